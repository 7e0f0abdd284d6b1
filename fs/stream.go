package fs

import (
	"bytes"
	"errors"
	"syscall"

	"pipefs/pipe"
)

// The data path of `in` and `out`, served straight from the request loop.
//
// Both files are opened with FOPEN_STREAM, so the kernel starts every
// read(2) and write(2) at offset 0 and gives the later requests of the same
// call (a call larger than one request is split) the offset reached so far.
// The READ handler relies on that: offset > 0 means "this read(2) already
// returned bytes", so it may finish the message in progress but must end
// short rather than start the next message or block.

const (
	evIn     = 0x001
	evOut    = 0x004
	evErr    = 0x008
	evHup    = 0x010
	evRdNorm = 0x040
	evWrNorm = 0x100
)

// loopScratch is per request-loop goroutine memory, reused by every request
// it serves so that the data path does not allocate.
type loopScratch struct {
	parts  [][]byte
	out    []byte    // reply buffer for requests handed to go-fuse
	outIov [1][]byte // {out}
	raw    [3][]byte // a request's pieces, for go-fuse
}

func newLoopScratch() loopScratch {
	out := make([]byte, reqBufSize)
	return loopScratch{out: out, outIov: [1][]byte{out}}
}

func (s *Server) serveRead(unique uint64, in readIn, sc *loopScratch) {
	h := s.handles.get(in.Fh)
	if h == nil {
		s.replyErr(unique, syscall.EBADF)
		return
	}
	switch h.kind {
	case kindOut:
	case kindCtl, kindRootCtl, kindPending:
		s.replyData(unique, [][]byte{h.readSnapshot(in.Offset, in.Size)})
		return
	default:
		s.replyErr(unique, syscall.EBADF)
		return
	}
	cont := in.Offset > 0
	nonblock := in.Flags&syscall.O_NONBLOCK != 0
	// First without a request: most reads are answered at once, and
	// only one that must wait pays for entering the park table.
	parts, err := h.reader.Read(sc.parts[:0], int(in.Size), cont, true, nil, nil)
	if errors.Is(err, pipe.ErrWouldBlock) && !nonblock {
		pk := s.enterPark(unique, false)
		parts, err = h.reader.Read(parts, int(in.Size), cont, false, &pk.read, pk)
		if errors.Is(err, pipe.ErrParked) {
			s.afterPark(unique)
			return
		}
		s.leavePark(pk)
		pk.unref()
	}
	s.replyRead(unique, parts, err)
	clear(parts)
	sc.parts = parts[:0]
}

// replyRead answers a READ: bytes, end of file for a destroyed pipe, or an
// errno.
func (s *Server) replyRead(unique uint64, parts [][]byte, err error) {
	switch {
	case err == nil:
		s.replyData(unique, parts)
	case errors.Is(err, pipe.ErrClosed):
		s.replyData(unique, nil) // end of file
	default:
		s.replyErr(unique, errnoOf(err))
	}
}

func (s *Server) serveWrite(unique uint64, in readIn, data []byte, fromRing bool) {
	h := s.handles.get(in.Fh)
	if h == nil {
		s.replyErr(unique, syscall.EBADF)
		return
	}
	switch h.kind {
	case kindIn:
	case kindCtl:
		ctl := func() {
			if err := s.control(h.pn, data); err != nil {
				s.replyErr(unique, errnoOf(err))
			} else {
				s.replyWrite(unique, len(data))
			}
		}
		if fromRing {
			// A link command can wait for an unlink to settle, and
			// this thread is the only one serving its CPU's
			// requests. The copy outlives the ring entry's buffer,
			// which is unmapped when the connection ends.
			data = bytes.Clone(data)
			go ctl()
		} else {
			ctl()
		}
		return
	default:
		s.replyErr(unique, syscall.EBADF)
		return
	}
	if l := h.pn.tcpLink.Load(); l != nil {
		// After a disconnect (or a link that failed), the next write
		// reconnects: before the write is tried, since a write to a
		// pipe that is full would otherwise wait for a link that never
		// comes back to drain it.
		l.Reconnect()
	}
	nonblock := in.Flags&syscall.O_NONBLOCK != 0
	// Readers this write wakes are answered after the writer, which can
	// then go on writing while they are.
	var woken pipe.Deferred
	defer woken.Run()
	n, err := h.writer.WriteDeferred(data, true, nil, nil, &woken)
	if errors.Is(err, pipe.ErrWouldBlock) && !nonblock {
		pk := s.enterPark(unique, true)
		n, err = h.writer.Write(data, false, &pk.write, pk)
		if errors.Is(err, pipe.ErrParked) {
			s.afterPark(unique)
			return
		}
		s.leavePark(pk)
		pk.unref()
	}
	if err != nil {
		s.replyErr(unique, errnoOf(err))
		return
	}
	s.replyWrite(unique, n)
}

// servePoll answers FUSE_POLL with the file's readiness, and arms the
// handle for FUSE_NOTIFY_POLL when the kernel asks to be told of changes.
func (s *Server) servePoll(unique uint64, in pollIn) {
	h := s.handles.get(in.Fh)
	if h == nil {
		s.replyErr(unique, syscall.EBADF)
		return
	}
	var w pipe.Watcher
	if in.Flags&pollScheduleNotify != 0 && (h.reader != nil || h.writer != nil) {
		h.kh.Store(in.Kh)
		h.watching.Store(true)
		w = h
	}
	var revents uint32
	switch h.kind {
	case kindOut:
		rd := h.reader.PollRead(w)
		if rd.Readable {
			revents |= evIn | evRdNorm
		}
		if rd.Closed {
			revents |= evHup
		}
	case kindIn:
		rd := h.writer.PollWrite(w)
		if rd.Writable {
			revents |= evOut | evWrNorm
		}
		if rd.Closed {
			revents |= evErr
		}
	default:
		// ctl and pending answer at once, like regular files.
		revents = evIn | evRdNorm | evOut | evWrNorm
	}
	if w != nil && s.handles.get(in.Fh) == nil {
		// RELEASE ran while this POLL was served and did not see the
		// watch: disarm it here so the queue does not keep it.
		h.pn.p.Unwatch(h)
	}
	s.replyPoll(unique, revents)
}
