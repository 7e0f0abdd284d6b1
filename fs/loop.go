package fs

import (
	"errors"
	"runtime/debug"
	"syscall"

	"golang.org/x/sys/unix"
)

const opInit = 26

// dropInitFlag clears flag from an INIT reply.
func dropInitFlag(reply []byte, flag uint64) {
	if len(reply) < outHeaderSize+36 {
		return
	}
	out := reply[outHeaderSize:]
	ne.PutUint32(out[12:], ne.Uint32(out[12:])&^uint32(flag))
	ne.PutUint32(out[32:], ne.Uint32(out[32:])&^uint32(flag>>32))
}

// initFlags returns the flags of an INIT reply (struct fuse_init_out after
// the out header: flags at 12, flags2 at 32).
func initFlags(reply []byte) uint64 {
	if len(reply) < outHeaderSize+36 {
		return 0
	}
	out := reply[outHeaderSize:]
	return uint64(ne.Uint32(out[12:])) | uint64(ne.Uint32(out[32:]))<<32
}

// readLoop is one of the few goroutines that read requests from the
// device. It never waits for anything but the device: a request that has
// to wait is parked (see park.go), so a thousand blocked readers cost no
// goroutines and cannot starve a mkdir.
func (s *Server) readLoop() {
	defer s.loops.Done()
	buf := make([]byte, reqBufSize)
	sc := newLoopScratch()
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
		s.dispatchDev(buf[:n], &sc)
	}
}

// request is one request from the kernel, split the way FUSE over io_uring
// delivers it: the per-operation header (fuse_read_in, fuse_write_in...)
// and what follows it (write data, names).
type request struct {
	h       inHeader
	opIn    []byte
	payload []byte
	hdr     []byte // the in header: hdr, opIn and payload are the whole request
	ring    bool   // came through the FUSE ring (see ring.go)
}

// dispatchDev serves a request read from /dev/fuse, where it arrives in
// one piece.
func (s *Server) dispatchDev(buf []byte, sc *loopScratch) {
	if len(buf) < inHeaderSize {
		s.log.Error("short request from the kernel", "len", len(buf))
		return
	}
	req := request{h: parseInHeader(buf), hdr: buf[:inHeaderSize], opIn: buf[inHeaderSize:]}
	if req.h.Opcode == opWrite && len(req.opIn) >= writeInSize {
		req.opIn, req.payload = req.opIn[:writeInSize], req.opIn[writeInSize:]
	}
	s.dispatch(req, sc)
}

// dispatch serves one request: the data path of pipe files here, the rest
// through go-fuse's protocol server.
func (s *Server) dispatch(req request, sc *loopScratch) {
	h := req.h
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic serving request", "op", h.Opcode, "panic", r, "stack", string(debug.Stack()))
			s.replyErr(h.Unique, syscall.EIO)
		}
	}()
	if s.opts.Debug {
		s.log.Debug("request", "op", h.Opcode, "unique", h.Unique, "node", h.NodeID, "pid", h.PID)
	}
	body := req.opIn
	switch h.Opcode {
	case opRead:
		if len(body) >= readInSize {
			s.serveRead(h.Unique, parseReadIn(body), sc)
			return
		}
	case opWrite:
		if len(body) >= writeInSize {
			in := parseReadIn(body)
			if uint64(in.Size) <= uint64(len(req.payload)) {
				s.serveWrite(h.Unique, in, req.payload[:in.Size], req.ring)
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
		// go-fuse reads the pieces as one byte stream.
		sc.raw = [3][]byte{req.hdr, req.opIn, req.payload}
		n, st := s.proto.HandleRequest(sc.raw[:], sc.outIov[:])
		if !st.Ok() {
			s.replyErr(h.Unique, syscall.Errno(st))
			return
		}
		if h.Opcode == opInit && s.ringPrep == nil {
			dropInitFlag(sc.out[:n], capOverIOURing) // no ring to serve it
		}
		if n > 0 {
			s.writeDev([][]byte{sc.out[:n]})
		}
		if h.Opcode == opInit {
			s.markReady(initFlags(sc.out[:n]))
		}
		return
	}
	s.log.Error("malformed request from the kernel", "op", h.Opcode, "len", h.Len)
	s.replyErr(h.Unique, syscall.EINVAL)
}
