// Package pipe is the queueing engine behind pipefs: message queues with a
// byte capacity, framing of written bytes into messages, readers that may
// consume a message across several reads, and waiters that are parked
// without holding a goroutine.
//
// # Model
//
// A [Pipe] has a send side, where bytes written to its `in` file are framed
// into messages, and a receive side, from which its `out` file reads. For a
// local pipe both sides are the same [Queue]; a link (package netlink) can
// later separate them so that the send side drains to a peer and the receive
// side fills from it.
//
// # Waiting without goroutines
//
// The filesystem serves many blocked readers and writers with a small, fixed
// set of goroutines, so a read that finds no message and a write that finds no
// room do not block: they are parked as a [ReadRequest] or [WriteRequest] and
// completed later, from whichever call made them ready, through the
// request's notifier. Completions are always delivered after the queue lock
// is released, so a notifier may do slow work such as a write(2).
//
// Readiness for poll(2) is reported through [Watcher]s: a watcher armed on a
// queue is woken whenever the queue may have become readable or writable
// after somebody saw it not ready.
//
// This package knows nothing of FUSE, files or sockets.
package pipe
