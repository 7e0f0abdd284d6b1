package fs

import (
	"sync"
	"syscall"
	"unsafe"
)

// maxIovecs bounds the views a reply sends with one writev(2); a reply with
// more is copied into one buffer first.
const maxIovecs = 64

var bigBufPool = sync.Pool{New: func() any { b := make([]byte, reqBufSize); return &b }}

// writeDev writes one reply or notification to the device; the kernel
// takes each write(2) as one whole message.
func (s *Server) writeDev(iov [][]byte) {
	if rs := s.ring.Load(); rs != nil && len(iov) > 0 && len(iov[0]) >= outHeaderSize {
		// A request that came through the FUSE ring is answered there.
		if unique := ne.Uint64(iov[0][8:]); unique != 0 {
			if e := rs.take(unique); e != nil {
				rs.reply(e, iov)
				return
			}
		}
	}
	var vecs [maxIovecs + 1]syscall.Iovec
	n := 0
	for _, b := range iov {
		if len(b) == 0 {
			continue
		}
		vecs[n].Base = &b[0]
		vecs[n].SetLen(len(b))
		n++
	}
	s.fdMu.RLock()
	defer s.fdMu.RUnlock()
	if s.fd < 0 {
		return // the connection has ended
	}
	for {
		_, _, e := syscall.Syscall(syscall.SYS_WRITEV, uintptr(s.fd), uintptr(unsafe.Pointer(&vecs[0])), uintptr(n))
		switch e {
		case 0:
			return
		case syscall.EINTR:
			continue
		case syscall.ENOENT:
			// The request was aborted (its caller was killed before
			// the reply): nothing to answer any more.
			return
		default:
			s.log.Debug("write to /dev/fuse failed", "err", e)
			return
		}
	}
}

// replyErr answers a request with an error (or success with no payload).
func (s *Server) replyErr(unique uint64, errno syscall.Errno) {
	var hdr [outHeaderSize]byte
	putOutHeader(hdr[:], outHeaderSize, -int32(errno), unique)
	s.writeDev([][]byte{hdr[:]})
}

// replyData answers a request with payload parts.
func (s *Server) replyData(unique uint64, parts [][]byte) {
	var hdr [outHeaderSize]byte
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	putOutHeader(hdr[:], uint32(outHeaderSize+n), 0, unique)
	if len(parts) <= maxIovecs {
		var iov [maxIovecs + 1][]byte
		iov[0] = hdr[:]
		copy(iov[1:], parts)
		s.writeDev(iov[:len(parts)+1])
		return
	}
	bp := bigBufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	for _, p := range parts {
		buf = append(buf, p...)
	}
	s.writeDev([][]byte{hdr[:], buf})
	*bp = buf[:0]
	bigBufPool.Put(bp)
}

// replyWrite answers a WRITE with the number of bytes taken.
func (s *Server) replyWrite(unique uint64, n int) {
	var b [outHeaderSize + 8]byte
	putOutHeader(b[:], uint32(len(b)), 0, unique)
	ne.PutUint32(b[outHeaderSize:], uint32(n))
	s.writeDev([][]byte{b[:]})
}

// replyPoll answers a POLL with the ready events.
func (s *Server) replyPoll(unique uint64, revents uint32) {
	var b [outHeaderSize + 8]byte
	putOutHeader(b[:], uint32(len(b)), 0, unique)
	ne.PutUint32(b[outHeaderSize:], revents)
	s.writeDev([][]byte{b[:]})
}

// notifyPoll asks the kernel to poll the open file with poll handle kh
// again (FUSE_NOTIFY_POLL): its waiters wake up and re-check readiness.
func (s *Server) notifyPoll(kh uint64) {
	var b [outHeaderSize + 8]byte
	putOutHeader(b[:], uint32(len(b)), notifyPoll, 0)
	ne.PutUint64(b[outHeaderSize:], kh)
	s.writeDev([][]byte{b[:]})
}
