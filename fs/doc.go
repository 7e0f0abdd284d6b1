// Package fs is the pipefs filesystem: it presents every pipe of the
// engine (package pipe) as a directory holding `in`, `out`, `pending` and
// `ctl`, and serves it over FUSE with a request loop of its own.
//
// # Why its own loop
//
// go-fuse answers FUSE_POLL with ENOSYS, after which the kernel reports every
// file as always ready, and its serving loop gives each request a goroutine
// that may block. pipefs needs real poll(2) and must hold thousands of
// blocked readers without holding goroutines, so [Server] opens /dev/fuse
// itself, reads requests with a small fixed set of goroutines, and answers
// READ, WRITE, POLL and INTERRUPT of pipe files directly: a read that has to
// wait is parked in the engine and answered later by whoever makes it ready.
// Every other request (lookup, mkdir, open, release...) goes to go-fuse's
// [fuse.ProtocolServer], which decodes it and calls the [fuse.RawFileSystem]
// methods of this package.
//
// # Files
//
// dir_ops.go serves the namespace, open_ops.go opening and closing,
// stream.go the data path of `in` and `out`, status.go the `ctl` and
// `pending` files, loop.go the /dev/fuse request loop, ring.go,
// ringthread.go and ringkick.go FUSE over io_uring (per-CPU rings, where
// the kernel offers them; package uring holds the io_uring calls),
// park.go parked requests and interrupts, mount_linux.go mounting, and
// server.go ties them together.
//
// Errors inside the package are the engine's sentinel errors; they become
// errnos in one place, errno.go.
package fs
