package netlink

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

func decodeAll(b []byte, maxData int) ([]frame, error) {
	fr := &frameReader{r: bufio.NewReader(bytes.NewReader(b)), maxData: maxData}
	var out []frame
	for {
		f, err := fr.next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, f)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	frames := []frame{
		{typ: frameData, value: 1, data: []byte("hello\n")},
		{typ: frameData, value: 2, data: []byte{}},
		{typ: frameData, value: 1<<64 - 1, data: []byte{0, '\n', 0xff, 0}},
		{typ: frameAck, value: 42},
		{typ: frameCredit, value: 1 << 40},
		{typ: framePing, value: 7},
		{typ: framePong, value: 7},
		{typ: frameBye, data: []byte("see you")},
		{typ: frameBye},
		{typ: frameHello, data: bytes.Repeat([]byte{1}, 61)},
		{typ: frameAuth, data: []byte{0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{typ: frameFeatures, value: featureRuns},
		{typ: frameRun, value: 7, n: 2, data: []byte("x\ny\n")},
	}
	for _, f := range frames {
		t.Run(f.typ.String(), func(t *testing.T) {
			enc := appendFrame(nil, f)
			var buf bytes.Buffer
			bw := bufio.NewWriter(&buf)
			if err := (&frameWriter{w: bw}).write(f); err != nil {
				t.Fatal(err)
			}
			bw.Flush()
			if !bytes.Equal(buf.Bytes(), enc) {
				t.Fatalf("writeFrame = %x, appendFrame = %x", buf.Bytes(), enc)
			}
			got, err := decodeAll(enc, 64)
			if err != nil || len(got) != 1 {
				t.Fatalf("decode(%x) = %v, %v; want one frame", enc, got, err)
			}
			g := got[0]
			if g.typ != f.typ || g.value != f.value || g.n != f.n || !bytes.Equal(g.data, f.data) {
				t.Fatalf("decoded %+v, want %+v", g, f)
			}
		})
	}
}

func TestFrameLayout(t *testing.T) {
	got := appendFrame(nil, frame{typ: frameData, value: 0x0102030405060708, data: []byte("ab")})
	want := []byte{0, 0, 0, 11, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 'a', 'b'}
	if !bytes.Equal(got, want) {
		t.Fatalf("DATA encodes as %x, want %x", got, want)
	}
}

func TestFrameRejects(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		maxData int
		want    error
		msg     string
	}{
		{"zero length", []byte{0, 0, 0, 0, 0x10}, 64, ErrBadFrame, "zero length"},
		{"unknown type", []byte{0, 0, 0, 1, 0x7f}, 64, ErrBadFrame, "unknown frame type 0x7f"},
		{"data over max", appendFrame(nil, frame{typ: frameData, value: 1, data: make([]byte, 65)}), 64, ErrFrameTooLarge, "limit"},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 0x10}, 64, ErrFrameTooLarge, "limit"},
		{"http request", []byte("GET / HTTP/1.1\r\n\r\n"), 0, ErrBadFrame, "unknown frame type 0x2f"},
		{"extension over limit", []byte{0x01, 0, 0, 0, 0x90}, 64, ErrFrameTooLarge, "limit 72"},
		{"ack too short", []byte{0, 0, 0, 5, 0x11, 0, 0, 0, 0}, 64, ErrBadFrame, "want 8"},
		{"ack too long", []byte{0, 0, 0, 10, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 64, ErrFrameTooLarge, "limit 8"},
		{"data without seq", []byte{0, 0, 0, 3, 0x10, 0, 0}, 64, ErrBadFrame, "want 8"},
		{"bye too long", appendFrame(nil, frame{typ: frameBye, data: make([]byte, MaxByeText+1)}), 1 << 20, ErrFrameTooLarge, "limit 1024"},
		{"truncated header", []byte{0, 0, 0}, 64, ErrBadFrame, "inside a frame header"},
		{"truncated body", []byte{0, 0, 0, 20, 0x10, 0, 0, 0, 0, 0, 0, 0, 1, 'x'}, 64, ErrBadFrame, "inside a DATA frame"},
		{"handshake frame over limit", appendFrame(nil, frame{typ: frameHello, data: make([]byte, maxHandshakeBody+1)}), 1 << 20, ErrFrameTooLarge, "limit 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeAll(tt.in, tt.maxData)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("decode(%x) error = %v; want %v mentioning %q", tt.in, err, tt.want, tt.msg)
			}
		})
	}
}

func TestFrameSkipsExtensions(t *testing.T) {
	var in []byte
	in = append(in, 0, 0, 0, 4, 0x9f, 9, 9, 9)
	in = appendFrame(in, frame{typ: frameAck, value: 3})
	got, err := decodeAll(in, 64)
	if err != nil || len(got) != 2 || got[0].typ != 0x9f || got[0].data != nil || got[1].value != 3 {
		t.Fatalf("decode = %+v, %v; want a skipped extension then ACK 3", got, err)
	}
}

// FEATURES and RUN, the extensions pipefs knows, decode in a session;
// bytes after FEATURES' bits are reserved and skipped; during the
// handshake (no max message yet) they are skipped like any extension.
func TestFrameFeaturesAndRun(t *testing.T) {
	lines := []byte("a\nbb\nccc\n")
	var in []byte
	in = appendFrame(in, frame{typ: frameFeatures, value: featureRuns})
	in = append(in, 0, 0, 0, 11, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 7, 7) // two reserved bytes
	in = appendFrame(in, frame{typ: frameRun, value: 5, n: 3, data: lines})
	in = appendFrame(in, frame{typ: frameAck, value: 3})
	got, err := decodeAll(in, 64)
	if err != nil || len(got) != 4 {
		t.Fatalf("decode = %+v, %v; want four frames", got, err)
	}
	if got[0].typ != frameFeatures || got[0].value != featureRuns || got[1].value != featureRuns {
		t.Errorf("FEATURES decoded as %+v and %+v", got[0], got[1])
	}
	if r := got[2]; r.typ != frameRun || r.value != 5 || r.n != 3 || !bytes.Equal(r.data, lines) {
		t.Errorf("RUN decoded as %+v", r)
	}
	// A RUN larger than the read buffer is read straight into its body.
	big := bytes.Repeat([]byte("0123456789abcde\n"), 100)
	enc := appendFrame(nil, frame{typ: frameRun, value: 9, n: 100, data: big})
	fr := &frameReader{r: bufio.NewReaderSize(bytes.NewReader(enc), 16), maxData: 1 << 20}
	if f, err := fr.next(); err != nil || f.value != 9 || f.n != 100 || !bytes.Equal(f.data, big) {
		t.Errorf("large RUN decoded as %v, %d, %d bytes, %v", f.value, f.n, len(f.data), err)
	}
	// During the handshake both are skipped.
	got, err = decodeAll(appendFrame(nil, frame{typ: frameFeatures, value: 1}), 0)
	if err != nil || len(got) != 1 || got[0].value != 0 {
		t.Errorf("FEATURES in a handshake decoded as %+v, %v; want skipped", got, err)
	}
	// A RUN too short for its count, and one over the max message.
	for _, in := range [][]byte{
		{0, 0, 0, 10, 0x81, 0, 0, 0, 0, 0, 0, 0, 1, 0},
		appendFrame(nil, frame{typ: frameRun, value: 1, n: 1, data: make([]byte, 61)}),
	} {
		if _, err := decodeAll(in, 64); err == nil {
			t.Errorf("decode(%x) took a malformed RUN", in)
		}
	}
}

// A length is checked before the body is read, so a frame that claims a
// gigabyte is refused after reading five bytes.
func TestFrameNoAllocationFromLength(t *testing.T) {
	in := []byte{0x3f, 0xff, 0xff, 0xff, 0x10}
	allocs := testing.AllocsPerRun(100, func() {
		fr := &frameReader{r: bufio.NewReaderSize(bytes.NewReader(in), 16), maxData: 1 << 30}
		fr.next()
	})
	// The bufio.Reader, the bytes.Reader, the frameReader and the error
	// are all small; a gigabyte would show up as a slow test, not a count.
	if allocs > 10 {
		t.Fatalf("refusing a huge frame took %v allocations", allocs)
	}
}

// Small messages share a slab: consecutive messages are adjacent in one
// allocation.
func TestFrameSlab(t *testing.T) {
	var in []byte
	in = appendFrame(in, frame{typ: frameData, value: 1, data: []byte("ab")})
	in = appendFrame(in, frame{typ: frameData, value: 2, data: []byte("cd")})
	got, err := decodeAll(in, 64)
	if err != nil || len(got) != 2 {
		t.Fatal(got, err)
	}
	if cap(got[0].data) < 4 || string(got[0].data[:4]) != "abcd" {
		t.Fatalf("messages not adjacent: %q cap %d", got[0].data, cap(got[0].data))
	}
}

// The examples of the extensions in docs/protocol.md are what this
// package writes.
func TestFrameDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []frame{
		{typ: frameFeatures, value: featureRuns},
		{typ: frameRun, value: 7, n: 2, data: []byte("a\nb\n")},
	} {
		h := hex.EncodeToString(appendFrame(nil, f))
		var parts []string
		for i := 0; i < len(h); i += 2 {
			parts = append(parts, h[i:i+2])
		}
		if want := strings.Join(parts, " "); !strings.Contains(string(doc), want) {
			t.Errorf("docs/protocol.md does not show %s as %s", f.typ, want)
		}
	}
}
