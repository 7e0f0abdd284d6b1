// Package pipefs holds the end-to-end tests of the pipefs command
// (mount_test.go): they build the real binary, mount it, and drive the mount
// as users do, with shell tools and client processes. The filesystem itself
// is in fs/, the queueing engine in pipe/, and the command in cmd/pipefs.
package pipefs
