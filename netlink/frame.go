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

	// Extensions of pipefs (docs/protocol.md): FEATURES says what else a
	// side accepts; RUN carries a batch of lines, only to a peer whose
	// FEATURES accepted it.
	frameFeatures frameType = 0x80
	frameRun      frameType = 0x81
)

// Feature bits of FEATURES.
const (
	// featureRuns: the sender accepts RUN frames.
	featureRuns uint64 = 1 << 0
)

// runHeaderSize is the bytes of a RUN frame before its lines: header,
// first sequence number, message count.
const runHeaderSize = dataHeaderSize + 4

var frameNames = map[frameType]string{
	frameHello: "HELLO", frameChallenge: "CHALLENGE", frameAuth: "AUTH",
	frameData: "DATA", frameAck: "ACK", frameCredit: "CREDIT",
	framePing: "PING", framePong: "PONG", frameBye: "BYE", frameError: "ERROR",
	frameFeatures: "FEATURES", frameRun: "RUN",
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
	// CREDIT's byte limit, PING's and PONG's token, FEATURES' bits, RUN's
	// first sequence number.
	value uint64
	// n is RUN's message count.
	n int
	// data is DATA's message, RUN's lines, BYE's and ERROR's text, or a
	// handshake frame's body.
	data []byte
}

// hasValue reports whether frames of type t carry the 8-byte value.
func (t frameType) hasValue() bool {
	switch t {
	case frameData, frameAck, frameCredit, framePing, framePong, frameFeatures, frameRun:
		return true
	}
	return false
}

// fixedBody is the size of the fields at the start of a body of type t
// (the value, and RUN's count); exact reports whether the body is exactly
// that (otherwise it is at least that).
func (t frameType) fixedBody() (size int64, exact bool) {
	switch t {
	case frameData, frameFeatures:
		return seqSize, false
	case frameRun:
		return seqSize + 4, false
	case frameAck, frameCredit, framePing, framePong:
		return seqSize, true
	}
	return 0, false
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

// appendFrame appends the encoding of f, without a tag, to dst.
func appendFrame(dst []byte, f frame) []byte {
	return append(appendHead(dst, f, len(f.data), 0), f.data...)
}

// appendHead appends the start of f's encoding — length, type and fixed
// fields — for a frame whose data is size bytes, followed by tag bytes of
// tag.
func appendHead(dst []byte, f frame, size, tag int) []byte {
	fixed, _ := f.typ.fixedBody()
	dst = binary.BigEndian.AppendUint32(dst, uint32(1+int(fixed)+size+tag))
	dst = append(dst, byte(f.typ))
	if f.typ.hasValue() {
		dst = binary.BigEndian.AppendUint64(dst, f.value)
	}
	if f.typ == frameRun {
		dst = binary.BigEndian.AppendUint32(dst, uint32(f.n))
	}
	return dst
}

// frameWriter encodes a session's frames into a buffered connection,
// each with its tag when the connection is authenticated.
type frameWriter struct {
	w   *bufio.Writer
	key *frameKey // nil: frames carry no tag
}

func (fw *frameWriter) tagLen() int {
	if fw.key == nil {
		return 0
	}
	return tagSize
}

// write writes f. A frame that fits in the buffer's free space is encoded
// there directly; a larger one has its header go through a small stack
// buffer, so that a DATA message is copied once, into the buffer (or not
// at all when it is larger than the buffer).
func (fw *frameWriter) write(f frame) error {
	w, tag := fw.w, fw.tagLen()
	if runHeaderSize+len(f.data)+tag <= w.Available() {
		b := append(appendHead(w.AvailableBuffer(), f, len(f.data), tag), f.data...)
		if fw.key != nil {
			n := min(len(b), macHead)
			b = fw.key.seal(b, b[:n], b[n:])
		}
		_, err := w.Write(b)
		return err
	}
	var hdr [runHeaderSize]byte
	h := appendHead(hdr[:0], f, len(f.data), tag)
	var sum [tagSize]byte
	if fw.key != nil {
		fw.key.seal(sum[:0], h, f.data)
	}
	if _, err := w.Write(h); err != nil {
		return err
	}
	if len(f.data) > w.Available() && len(f.data) >= w.Size() {
		// A large body (a RUN) goes straight to the connection rather
		// than through the buffer: flushing what is buffered first costs
		// a write, copying half a buffer's worth costs more.
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if _, err := w.Write(f.data); err != nil {
		return err
	}
	_, err := w.Write(sum[:tag])
	return err
}

// data writes a DATA frame, the frame written most.
func (fw *frameWriter) data(seq uint64, msg []byte) error {
	w, tag := fw.w, fw.tagLen()
	if dataHeaderSize+len(msg)+tag > w.Available() {
		return fw.write(frame{typ: frameData, value: seq, data: msg})
	}
	b := w.AvailableBuffer()
	b = binary.BigEndian.AppendUint32(b, uint32(1+seqSize+len(msg)+tag))
	b = append(b, byte(frameData))
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, msg...)
	if fw.key != nil {
		n := min(len(b), macHead)
		b = fw.key.seal(b, b[:n], b[n:])
	}
	_, err := w.Write(b)
	return err
}

// run writes a RUN frame of n lines, b, the first numbered seq. The
// lines go straight from b to the connection when the buffer has no room
// for them.
func (fw *frameWriter) run(seq uint64, n int, b []byte) error {
	return fw.write(frame{typ: frameRun, value: seq, n: n, data: b})
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
	// key verifies every frame's tag once the handshake of an
	// authenticated connection is complete; nil before, and without a
	// secret.
	key  *frameKey
	slab []byte
}

// A slab is at most the Go allocator's largest small size (32 KiB), which
// comes from per-thread caches; larger ones are allocated, zeroed and
// collected one by one, which cost more than the messages in them.
const (
	slabSize   = 32 << 10
	maxSlabbed = 4 << 10
)

// next reads one frame. The length is checked against the limit for its
// type before anything is allocated, so a hostile length costs nothing.
// On an authenticated connection the frame's tag is verified before
// anything of it is decoded. Errors wrap ErrFrameTooLarge, ErrBadFrame,
// ErrIntegrity, or the stream's error (io.EOF only on a clean end between
// frames).
func (fr *frameReader) next() (frame, error) {
	if f, ok := fr.bufferedData(); ok {
		return f, nil
	}
	hdr, err := fr.r.Peek(headerSize)
	if err != nil {
		if len(hdr) > 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
			return frame{}, fmt.Errorf("%w: stream ends inside a frame header", ErrBadFrame)
		}
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:lengthSize])
	t := frameType(hdr[lengthSize])
	tag := fr.tagLen()
	if n == 0 {
		return frame{}, fmt.Errorf("%w: zero length", ErrBadFrame)
	}
	if int64(n) < 1+int64(tag) {
		return frame{}, fmt.Errorf("%w: %s frame of length %d, too short for its tag", ErrBadFrame, t, n)
	}
	body := int64(n) - 1 - int64(tag)
	maxBody := t.maxBody(fr.maxData)
	if maxBody < 0 {
		return frame{}, fmt.Errorf("%w: unknown frame type %s", ErrBadFrame, t)
	}
	if body > int64(maxBody) {
		return frame{}, fmt.Errorf("%w: %s frame of %d bytes, limit %d", ErrFrameTooLarge, t, body, maxBody)
	}
	fixed, exact := t.fixedBody()
	if body < fixed || (exact && body != fixed) {
		return frame{}, fmt.Errorf("%w: %s frame of %d bytes, want %d", ErrBadFrame, t, body, fixed)
	}
	f := frame{typ: t}
	// An extension this side does not know (or any, during the
	// handshake, which refuses it) is skipped whole: unread, unless its
	// tag must be checked.
	known := t < frameExtension || (fr.maxData > 0 && (t == frameFeatures || t == frameRun))
	whole := headerSize + int(body) + tag
	if !known && fr.key == nil {
		if _, err := fr.r.Discard(whole); err != nil {
			return frame{}, truncated(t, err)
		}
		return f, nil
	}
	// The usual case: the whole frame fits in the read buffer, and is
	// decoded from there with one copy of its body. A larger one is read
	// straight into its own allocation.
	var b []byte
	own := whole > fr.r.Size()
	if own {
		// Not before the fixed fields are here: a length alone, which
		// costs the peer five bytes, allocates nothing.
		if _, err := fr.r.Peek(min(headerSize+int(fixed), fr.r.Size())); err != nil {
			return frame{}, truncated(t, err)
		}
		b = make([]byte, whole)
		if _, err := io.ReadFull(fr.r, b); err != nil {
			return frame{}, truncated(t, err)
		}
	} else if b, err = fr.r.Peek(whole); err != nil {
		return frame{}, truncated(t, err)
	}
	if fr.key != nil && !fr.key.open(b) {
		return frame{}, fmt.Errorf("%w: %s frame with counter %d", ErrIntegrity, t, fr.key.count)
	}
	if !own {
		defer fr.r.Discard(whole)
	}
	if !known {
		return f, nil
	}
	b = b[headerSize : whole-tag]
	if t.hasValue() {
		f.value = binary.BigEndian.Uint64(b)
		b = b[seqSize:]
	}
	switch t {
	case frameRun:
		f.n = int(binary.BigEndian.Uint32(b))
		b = b[4:]
	case frameFeatures:
		b = nil // bytes after the bits are reserved for later versions
	}
	switch {
	case own:
		f.data = b[:len(b):len(b)] // nothing else may seem to follow it
	case len(b) > 0 || t == frameData:
		f.data = fr.alloc(len(b))
		copy(f.data, b)
	}
	return f, nil
}

// tagLen is the size of the tag at the end of every frame: 0 before the
// handshake is complete and on a connection without a secret.
func (fr *frameReader) tagLen() int {
	if fr.key == nil {
		return 0
	}
	return tagSize
}

// bufferedData decodes the next frame if it is a valid DATA frame that is
// already whole in the buffer: the common case under load, taken with
// one look at the buffer. Anything else is left to the general path.
func (fr *frameReader) bufferedData() (frame, bool) {
	run := fr.dataRun(nil, 1)
	if len(run) == 0 {
		return frame{}, false
	}
	return run[0], true
}

// dataRun decodes the valid DATA frames that lie whole at the head of the
// buffer, at most max of them, appending them to dst; it reads nothing
// from the stream. Under load most of the buffer is such a run, and
// decoding it in one pass costs a fraction of one call of next per frame.
// A frame whose tag is wrong stops the run; next then reports it.
func (fr *frameReader) dataRun(dst []frame, max int) []frame {
	b, _ := fr.r.Peek(fr.r.Buffered()) // already buffered: no reading
	tag := int64(fr.tagLen())
	pos := 0
	for n := 0; n < max && len(b)-pos >= dataHeaderSize; n++ {
		length := int64(binary.BigEndian.Uint32(b[pos:]))
		end := int64(pos) + lengthSize + length
		if frameType(b[pos+lengthSize]) != frameData || length < 1+seqSize+tag ||
			length-1-seqSize-tag > int64(fr.maxData) || end > int64(len(b)) {
			break
		}
		if fr.key != nil && !fr.key.open(b[pos:end]) {
			break
		}
		f := frame{typ: frameData, value: binary.BigEndian.Uint64(b[pos+headerSize:])}
		f.data = fr.alloc(int(end-tag) - pos - dataHeaderSize)
		copy(f.data, b[pos+dataHeaderSize:end-tag])
		dst = append(dst, f)
		pos = int(end)
	}
	fr.r.Discard(pos)
	return dst
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
