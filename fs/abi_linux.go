package fs

import (
	"encoding/binary"
	"unsafe"
)

// The few kernel FUSE structures that the request loop decodes itself, for
// the requests it serves without going through go-fuse (see loop.go). The
// layouts are the kernel's include/uapi/linux/fuse.h, in native byte order.

const (
	opRelease   = 18
	opRead      = 15
	opWrite     = 16
	opFlush     = 25
	opInterrupt = 36
	opPoll      = 40

	// notifyPoll is the code of a FUSE_NOTIFY_POLL message, sent in the
	// error field of an unsolicited reply.
	notifyPoll = 1

	pollScheduleNotify = 1 << 0 // FUSE_POLL_SCHEDULE_NOTIFY

	inHeaderSize  = 40
	outHeaderSize = 16

	readInSize  = 40
	writeInSize = 40
	pollInSize  = 24
)

var ne = binary.NativeEndian

// inHeader is struct fuse_in_header.
type inHeader struct {
	Len     uint32
	Opcode  uint32
	Unique  uint64
	NodeID  uint64
	UID     uint32
	GID     uint32
	PID     uint32
	ExtLen  uint16
	Padding uint16
}

var _ [inHeaderSize - unsafe.Sizeof(inHeader{})]struct{}

func parseInHeader(b []byte) inHeader {
	return inHeader{
		Len:    ne.Uint32(b[0:]),
		Opcode: ne.Uint32(b[4:]),
		Unique: ne.Uint64(b[8:]),
		NodeID: ne.Uint64(b[16:]),
		UID:    ne.Uint32(b[24:]),
		GID:    ne.Uint32(b[28:]),
		PID:    ne.Uint32(b[32:]),
		ExtLen: ne.Uint16(b[36:]),
	}
}

// readIn is struct fuse_read_in; fuse_write_in has the same layout.
type readIn struct {
	Fh        uint64
	Offset    uint64
	Size      uint32
	ReadFlags uint32
	LockOwner uint64
	Flags     uint32 // the open file's current flags, O_NONBLOCK included
}

func parseReadIn(b []byte) readIn {
	return readIn{
		Fh:        ne.Uint64(b[0:]),
		Offset:    ne.Uint64(b[8:]),
		Size:      ne.Uint32(b[16:]),
		ReadFlags: ne.Uint32(b[20:]),
		LockOwner: ne.Uint64(b[24:]),
		Flags:     ne.Uint32(b[32:]),
	}
}

// pollIn is struct fuse_poll_in.
type pollIn struct {
	Fh     uint64
	Kh     uint64
	Flags  uint32
	Events uint32
}

func parsePollIn(b []byte) pollIn {
	return pollIn{
		Fh:     ne.Uint64(b[0:]),
		Kh:     ne.Uint64(b[8:]),
		Flags:  ne.Uint32(b[16:]),
		Events: ne.Uint32(b[20:]),
	}
}

// putOutHeader fills struct fuse_out_header.
func putOutHeader(b []byte, length uint32, errno int32, unique uint64) {
	ne.PutUint32(b[0:], length)
	ne.PutUint32(b[4:], uint32(errno))
	ne.PutUint64(b[8:], unique)
}
