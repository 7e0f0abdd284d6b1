// Package uring is the small part of Linux io_uring that pipefs needs to
// serve FUSE over io_uring: one ring with 128-byte submission entries
// (IORING_SETUP_SQE128, which FUSE's commands need for their 80 bytes of
// command data), owned by one thread (SINGLE_ISSUER with DEFER_TASKRUN, so
// completions are delivered only when that thread asks for them), the
// submission of entries, and the reaping of completions.
//
// It is written here rather than imported because the Go io_uring modules
// that support SQE128 and IORING_OP_URING_CMD are not available from the
// module proxy this project builds from; what is needed is small (setup,
// three shared-memory rings, one system call). See docs/design.md.
//
// A Ring is not safe for concurrent use: with SINGLE_ISSUER only the
// thread that created it may submit, so its owner must stay on one OS
// thread (runtime.LockOSThread) for the ring's whole life.
package uring
