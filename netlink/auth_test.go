package netlink

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// testKeys returns the two keys of a connection made with a fixed
// transcript.
func testKeys() (d2a, a2d []byte) {
	return deriveKeys([]byte("secret"), transcriptHash([]byte("hello"), []byte("challenge"), []byte("d"), []byte("a")))
}

// taggedFrames are frames of every kind the session sends, small ones and
// ones larger than a writer's buffer.
func taggedFrames() []frame {
	return []frame{
		{typ: frameCredit, value: 65536},
		{typ: frameFeatures, value: featureRuns},
		{typ: frameData, value: 1, data: []byte("hello\n")},
		{typ: frameData, value: 2, data: nil},
		{typ: frameAck, value: 2},
		{typ: frameRun, value: 3, n: 2, data: []byte("a\nb\n")},
		{typ: frameData, value: 5, data: bytes.Repeat([]byte("x"), 100<<10)},
		{typ: frameRun, value: 6, n: 3000, data: bytes.Repeat([]byte("0123456789abcde\n"), 3000)},
		{typ: framePing, value: 7},
		{typ: frameBye, data: []byte("see you")},
		{typ: frameError, data: nil},
	}
}

// encodeTagged writes frames through a frameWriter with a small buffer, so
// that both the in-buffer and the straight-through paths are taken.
func encodeTagged(t *testing.T, key []byte, frames []frame) []byte {
	t.Helper()
	var buf bytes.Buffer
	bw := bufio.NewWriterSize(&buf, 4096)
	fw := &frameWriter{w: bw, key: newFrameKey(key)}
	for _, f := range frames {
		var err error
		switch f.typ {
		case frameData:
			err = fw.data(f.value, f.data)
		case frameRun:
			err = fw.run(f.value, f.n, f.data)
		default:
			err = fw.write(f)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	bw.Flush()
	return buf.Bytes()
}

func decodeTagged(b []byte, key []byte, maxData int) ([]frame, error) {
	fr := &frameReader{r: bufio.NewReaderSize(bytes.NewReader(b), 64<<10), maxData: maxData, key: newFrameKey(key)}
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

// Every frame written with a key reads back with the same key, whatever
// path wrote it; each is 16 bytes longer than without.
func TestTaggedRoundTrip(t *testing.T) {
	d2a, _ := testKeys()
	frames := taggedFrames()
	enc := encodeTagged(t, d2a, frames)
	plain := 0
	for _, f := range frames {
		plain += len(appendFrame(nil, f))
	}
	if len(enc) != plain+len(frames)*tagSize {
		t.Fatalf("%d bytes tagged, %d plain: want %d more", len(enc), plain, len(frames)*tagSize)
	}
	got, err := decodeTagged(enc, d2a, 1<<20)
	if err != nil || len(got) != len(frames) {
		t.Fatalf("decoded %d frames, %v; want %d", len(got), err, len(frames))
	}
	for i, f := range frames {
		g := got[i]
		if g.typ != f.typ || g.value != f.value || g.n != f.n || !bytes.Equal(g.data, f.data) {
			t.Fatalf("frame %d decoded as %s %d %d (%d bytes), want %s %d %d (%d bytes)", i, g.typ, g.value, g.n, len(g.data), f.typ, f.value, f.n, len(f.data))
		}
	}
}

// The tag does not depend on where the caller's bytes are split.
func TestTagIgnoresSplit(t *testing.T) {
	d2a, _ := testKeys()
	f := appendFrame(nil, frame{typ: frameRun, value: 9, n: 2, data: []byte("split\nhere\n")})
	want := newFrameKey(d2a).sum(f[:macHead], f[macHead:])
	for i := 0; i <= macHead; i++ {
		if got := newFrameKey(d2a).sum(f[:i], f[i:]); !bytes.Equal(got, want) {
			t.Fatalf("split at %d: tag %x, want %x", i, got, want)
		}
	}
}

// A frame changed anywhere, replayed, read out of order, or read with
// the other direction's key is refused, and nothing of it is returned.
func TestTagRejects(t *testing.T) {
	d2a, a2d := testKeys()
	one := encodeTagged(t, d2a, []frame{{typ: frameData, value: 1, data: []byte("hello\n")}})
	two := encodeTagged(t, d2a, []frame{{typ: frameData, value: 1, data: []byte("hello\n")}, {typ: frameAck, value: 3}})
	second := two[len(one):]
	for i := range one {
		for _, bit := range []byte{0x01, 0x80} {
			b := bytes.Clone(one)
			b[i] ^= bit
			if got, err := decodeTagged(b, d2a, 64); err == nil || len(got) != 0 {
				t.Fatalf("byte %d flipped (%#x): decoded %v, %v; want an error and no frame", i, bit, got, err)
			}
		}
	}
	cases := []struct {
		name string
		in   []byte
		key  []byte
	}{
		{"replayed", append(bytes.Clone(one), one...), d2a},
		{"second frame first", append(bytes.Clone(second), one...), d2a},
		{"first frame left out", second, d2a},
		{"other direction's key", one, a2d},
	}
	for _, c := range cases {
		got, err := decodeTagged(c.in, c.key, 64)
		if !errors.Is(err, ErrIntegrity) {
			t.Errorf("%s: error %v, want ErrIntegrity", c.name, err)
		}
		if c.name == "replayed" && len(got) != 1 {
			t.Errorf("%s: decoded %d frames before the error, want 1", c.name, len(got))
		}
	}
	// A frame too short to hold a tag is malformed.
	if _, err := decodeTagged([]byte{0, 0, 0, 5, 0x11, 0, 0, 0, 0}, d2a, 64); !errors.Is(err, ErrBadFrame) {
		t.Errorf("short frame: %v, want ErrBadFrame", err)
	}
}

// The keys are bound to the secret and to every byte of the transcript,
// and differ by direction.
func TestKeysBound(t *testing.T) {
	bodies := [][]byte{[]byte("hello"), []byte("challenge"), []byte("d"), []byte("a")}
	d, a := deriveKeys([]byte("secret"), transcriptHash(bodies[0], bodies[1], bodies[2], bodies[3]))
	if bytes.Equal(d, a) {
		t.Fatal("both directions have the same key")
	}
	seen := map[string]bool{string(d): true, string(a): true}
	if d2, _ := deriveKeys([]byte("secreT"), transcriptHash(bodies[0], bodies[1], bodies[2], bodies[3])); seen[string(d2)] {
		t.Fatal("another secret gives the same key")
	}
	for i := range bodies {
		b := bytes.Clone(bodies[i])
		b[0] ^= 1
		changed := append([][]byte(nil), bodies...)
		changed[i] = b
		d2, a2 := deriveKeys([]byte("secret"), transcriptHash(changed[0], changed[1], changed[2], changed[3]))
		if seen[string(d2)] || seen[string(a2)] {
			t.Fatalf("changing body %d keeps a key", i)
		}
	}
	// Moving a byte from one body to the next changes the hash too.
	if bytes.Equal(transcriptHash([]byte("ab"), []byte("c"), nil, nil), transcriptHash([]byte("a"), []byte("bc"), nil, nil)) {
		t.Fatal("the transcript hash does not separate the bodies")
	}
}

// Both sides of a real handshake with a secret derive the same two keys,
// in opposite roles; without a secret there are none.
func TestHandshakeKeys(t *testing.T) {
	withSecret := func(s handshakeSide) handshakeSide { s.secret = []byte("k"); return s }
	dr, ar, derr, aerr := handshakePipe(t, withSecret(side(newSessionID(), 100, "", 0)), withSecret(side(newSessionID(), 100, "", 0)))
	if derr != nil || aerr != nil {
		t.Fatal(derr, aerr)
	}
	probe := []byte("probe frame bytes")
	tag := func(k *frameKey) []byte { return bytes.Clone(k.sum(probe, nil)) }
	if !bytes.Equal(tag(dr.send), tag(ar.recv)) || !bytes.Equal(tag(ar.send), tag(dr.recv)) {
		t.Fatal("the two sides derived different keys")
	}
	if bytes.Equal(tag(dr.send), tag(dr.recv)) {
		t.Fatal("one key for both directions")
	}
	dr, ar, derr, aerr = handshakePipe(t, side(newSessionID(), 100, "", 0), side(newSessionID(), 100, "", 0))
	if derr != nil || aerr != nil || dr.send != nil || ar.recv != nil {
		t.Fatalf("without a secret: keys %v %v, errors %v %v", dr.send, ar.recv, derr, aerr)
	}
}

// Tagging costs a little per frame and per byte; see docs/design.md.
func BenchmarkTag(b *testing.B) {
	d2a, _ := testKeys()
	for _, size := range []int{64, 128 << 10} {
		f := appendFrame(nil, frame{typ: frameRun, value: 1, n: 1, data: make([]byte, size)})
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			k := newFrameKey(d2a)
			b.SetBytes(int64(len(f)))
			for b.Loop() {
				k.sum(f[:macHead], f[macHead:])
			}
		})
	}
}
