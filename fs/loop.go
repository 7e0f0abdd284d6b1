package fs

import (
	"errors"
	"runtime/debug"
	"syscall"

	"golang.org/x/sys/unix"
)

const opInit = 26

// readLoop is one of the few goroutines that read requests from the
// device. It never waits for anything but the device: a request that has
// to wait is parked (see park.go), so a thousand blocked readers cost no
// goroutines and cannot starve a mkdir.
func (s *Server) readLoop() {
	defer s.loops.Done()
	buf := make([]byte, reqBufSize)
	sc := &loopScratch{out: make([]byte, reqBufSize)}
	for {
		n, err := unix.Read(s.fd, buf)
		if err != nil {
			switch {
			case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
				continue
			case errors.Is(err, unix.ENOENT):
				continue // the request was interrupted before we read it
			case errors.Is(err, unix.ENODEV):
				return // unmounted: the kernel ended the connection
			}
			s.log.Error("reading /dev/fuse failed; stopping", "err", err)
			return
		}
		s.dispatch(buf[:n], sc)
	}
}

// dispatch serves one request: the data path of pipe files here, the rest
// through go-fuse's protocol server.
func (s *Server) dispatch(req []byte, sc *loopScratch) {
	if len(req) < inHeaderSize {
		s.log.Error("short request from the kernel", "len", len(req))
		return
	}
	h := parseInHeader(req)
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic serving request", "op", h.Opcode, "panic", r, "stack", string(debug.Stack()))
			s.replyErr(h.Unique, syscall.EIO)
		}
	}()
	if s.opts.Debug {
		s.log.Debug("request", "op", h.Opcode, "unique", h.Unique, "node", h.NodeID, "pid", h.PID)
	}
	body := req[inHeaderSize:]
	switch h.Opcode {
	case opRead:
		if len(body) >= readInSize {
			s.serveRead(h.Unique, parseReadIn(body), sc)
			return
		}
	case opWrite:
		if len(body) >= writeInSize {
			in := parseReadIn(body)
			data := body[writeInSize:]
			if uint64(in.Size) <= uint64(len(data)) {
				s.serveWrite(h.Unique, in, data[:in.Size])
				return
			}
		}
	case opPoll:
		if len(body) >= pollInSize {
			s.servePoll(h.Unique, parsePollIn(body))
			return
		}
	case opInterrupt:
		if len(body) >= 8 {
			s.interrupt(ne.Uint64(body))
			return
		}
	default:
		n, st := s.proto.HandleRequest([][]byte{req}, [][]byte{sc.out})
		if !st.Ok() {
			s.replyErr(h.Unique, syscall.Errno(st))
			return
		}
		if n > 0 {
			s.writeDev([][]byte{sc.out[:n]})
		}
		if h.Opcode == opInit {
			s.markReady()
		}
		return
	}
	s.log.Error("malformed request from the kernel", "op", h.Opcode, "len", len(req))
	s.replyErr(h.Unique, syscall.EINVAL)
}
