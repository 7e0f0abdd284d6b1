package netlink

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// Frame layout (docs/protocol.md): a 4-byte big-endian length N counting
// the bytes after it, then a 1-byte type, then N-1 bytes of body.
const (
	lengthSize = 4
	headerSize = lengthSize + 1
	seqSize    = 8
	// dataHeaderSize is the bytes of a DATA frame before its message.
	dataHeaderSize = headerSize + seqSize
)

// Limits on the bodies of the small frames. Handshake bodies are at most a
// few hundred bytes; the limit leaves room without letting a stranger make
// us allocate more than a kilobyte before it has proved anything.
const (
	maxHandshakeBody = 1024
	// MaxByeText is the longest BYE text; Disconnect truncates longer ones.
	MaxByeText = 1024
)

// frameType is the type byte of a frame.
type frameType uint8

// Frame types. Types 0x80 to 0xFF are reserved for optional extensions: an
// established session skips them, so a later version may add some without
// breaking older peers. Any other unknown type is an error.
const (
	frameHello     frameType = 0x01
	frameChallenge frameType = 0x02
	frameAuth      frameType = 0x03
	frameData      frameType = 0x10
	frameAck       frameType = 0x11
	frameCredit    frameType = 0x12
	framePing      frameType = 0x13
	framePong      frameType = 0x14
	frameBye       frameType = 0x15
	frameError     frameType = 0x16

	frameExtension frameType = 0x80
)

var frameNames = map[frameType]string{
	frameHello: "HELLO", frameChallenge: "CHALLENGE", frameAuth: "AUTH",
	frameData: "DATA", frameAck: "ACK", frameCredit: "CREDIT",
	framePing: "PING", framePong: "PONG", frameBye: "BYE", frameError: "ERROR",
}

func (t frameType) String() string {
	if n, ok := frameNames[t]; ok {
		return n
	}
	return fmt.Sprintf("0x%02x", uint8(t))
}

// frame is one decoded frame.
type frame struct {
	typ frameType
	// value is DATA's sequence number, ACK's cumulative sequence number,
	// CREDIT's byte limit, PING's and PONG's token.
	value uint64
	// data is DATA's message, BYE's and ERROR's text, or a handshake
	// frame's body.
	data []byte
}

// hasValue reports whether frames of type t carry the 8-byte value.
func (t frameType) hasValue() bool {
	switch t {
	case frameData, frameAck, frameCredit, framePing, framePong:
		return true
	}
	return false
}

// maxBody is the largest body a frame of type t may have when messages are
// at most maxData bytes, or -1 for a type this version does not know.
func (t frameType) maxBody(maxData int) int {
	switch {
	case t == frameData:
		return seqSize + maxData
	case t == frameAck, t == frameCredit, t == framePing, t == framePong:
		return seqSize
	case t == frameBye, t == frameError:
		return MaxByeText
	case t == frameHello, t == frameChallenge, t == frameAuth:
		return maxHandshakeBody
	case t >= frameExtension:
		return seqSize + maxData
	}
	return -1
}

// frameLimit is the largest body accepted at all: the largest DATA, or
// during the handshake (maxData 0) the largest handshake frame.
func frameLimit(maxData int) int {
	return max(seqSize+maxData, maxHandshakeBody)
}

// appendFrame appends the encoding of f to dst.
func appendFrame(dst []byte, f frame) []byte {
	n := 1 + len(f.data)
	if f.typ.hasValue() {
		n += seqSize
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, byte(f.typ))
	if f.typ.hasValue() {
		dst = binary.BigEndian.AppendUint64(dst, f.value)
	}
	return append(dst, f.data...)
}

// writeFrame writes f to w. The header goes through a small stack buffer so
// that a DATA message is copied once, into w's buffer (or not at all when
// it is larger than the buffer).
func writeFrame(w *bufio.Writer, f frame) error {
	var hdr [dataHeaderSize]byte
	h := appendFrame(hdr[:0], frame{typ: f.typ, value: f.value})
	binary.BigEndian.PutUint32(h, uint32(len(h)-lengthSize+len(f.data)))
	if _, err := w.Write(h); err != nil {
		return err
	}
	_, err := w.Write(f.data)
	return err
}

// frameReader decodes frames from a buffered stream. Messages are carved
// out of a shared slab when small, so a burst of small messages costs a
// few allocations rather than one each; consecutive messages then lie
// adjacent in one allocation, which the pipe engine can join into one view
// for batch reads.
type frameReader struct {
	r *bufio.Reader
	// maxData is the largest DATA message accepted: the negotiated max
	// message, or 0 during the handshake.
	maxData int
	slab    []byte
}

const (
	slabSize   = 64 << 10
	maxSlabbed = 4 << 10
)

// next reads one frame. The length is checked against the limit for its
// type before anything is allocated, so a hostile length costs nothing.
// Errors wrap ErrFrameTooLarge, ErrBadFrame, or the stream's error
// (io.EOF only on a clean end between frames).
func (fr *frameReader) next() (frame, error) {
	var hdr [dataHeaderSize]byte
	if _, err := io.ReadFull(fr.r, hdr[:headerSize]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return frame{}, fmt.Errorf("%w: stream ends inside a frame header", ErrBadFrame)
		}
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:lengthSize])
	t := frameType(hdr[lengthSize])
	if n == 0 {
		return frame{}, fmt.Errorf("%w: zero length", ErrBadFrame)
	}
	body := int64(n) - 1
	if limit := frameLimit(fr.maxData); body > int64(limit) {
		return frame{}, fmt.Errorf("%w: %s frame of %d bytes, limit %d", ErrFrameTooLarge, t, body, limit)
	}
	maxBody := t.maxBody(fr.maxData)
	if maxBody < 0 {
		return frame{}, fmt.Errorf("%w: unknown frame type %s", ErrBadFrame, t)
	}
	if body > int64(maxBody) {
		return frame{}, fmt.Errorf("%w: %s frame of %d bytes, limit %d", ErrFrameTooLarge, t, body, maxBody)
	}
	f := frame{typ: t}
	if t >= frameExtension {
		if _, err := fr.r.Discard(int(body)); err != nil {
			return frame{}, truncated(t, err)
		}
		return f, nil
	}
	if t.hasValue() {
		if body < seqSize || (t != frameData && body != seqSize) {
			return frame{}, fmt.Errorf("%w: %s frame of %d bytes, want %d", ErrBadFrame, t, body, seqSize)
		}
		if _, err := io.ReadFull(fr.r, hdr[:seqSize]); err != nil {
			return frame{}, truncated(t, err)
		}
		f.value = binary.BigEndian.Uint64(hdr[:seqSize])
		body -= seqSize
	}
	if body > 0 || t == frameData {
		f.data = fr.alloc(int(body))
		if _, err := io.ReadFull(fr.r, f.data); err != nil {
			return frame{}, truncated(t, err)
		}
	}
	return f, nil
}

// buffered reports whether a whole frame is already buffered, so that the
// next call of next will not wait for the network.
func (fr *frameReader) buffered() bool {
	if fr.r.Buffered() < headerSize {
		return false
	}
	hdr, _ := fr.r.Peek(lengthSize)
	return uint64(fr.r.Buffered()) >= lengthSize+uint64(binary.BigEndian.Uint32(hdr))
}

// alloc returns n bytes for a frame body.
func (fr *frameReader) alloc(n int) []byte {
	if n > maxSlabbed {
		return make([]byte, n)
	}
	if len(fr.slab) < n {
		fr.slab = make([]byte, slabSize)
	}
	b := fr.slab[:n]
	fr.slab = fr.slab[n:]
	return b
}

func truncated(t frameType, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: stream ends inside a %s frame", ErrBadFrame, t)
	}
	return err
}
