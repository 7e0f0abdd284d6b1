package netlink

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzDecodeFrame feeds arbitrary bytes to the frame decoder: it must never
// panic or over-allocate, and whatever it accepts must encode back to the
// bytes it consumed.
func FuzzDecodeFrame(f *testing.F) {
	var seed []byte
	seed = appendFrame(seed, frame{typ: frameData, value: 1, data: []byte("hello\n")})
	seed = appendFrame(seed, frame{typ: frameAck, value: 1})
	seed = appendFrame(seed, frame{typ: frameCredit, value: 4096})
	seed = appendFrame(seed, frame{typ: framePing, value: 9})
	seed = appendFrame(seed, frame{typ: framePong, value: 9})
	seed = appendFrame(seed, frame{typ: frameBye, data: []byte("bye")})
	f.Add(seed, uint16(64))
	f.Add(appendFrame(nil, frame{typ: frameHello, data: make([]byte, 61)}), uint16(0))
	f.Add([]byte{0, 0, 0, 4, 0x80, 1, 2, 3}, uint16(16))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x10}, uint16(64))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), uint16(0))
	f.Add([]byte{0, 0, 0, 0}, uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, maxData uint16) {
		got, _ := decodeAll(in, int(maxData))
		var enc []byte
		for _, fr := range got {
			if fr.typ >= frameExtension {
				return // extensions are skipped, not kept
			}
			if fr.typ == frameData && len(fr.data) > int(maxData) {
				t.Fatalf("accepted a %d-byte message over max %d", len(fr.data), maxData)
			}
			enc = appendFrame(enc, fr)
		}
		if !bytes.HasPrefix(in, enc) {
			t.Fatalf("decoded frames re-encode as %x, not a prefix of %x", enc, in)
		}
	})
}

// FuzzDecodeTaggedFrame feeds arbitrary bytes to the decoder of an
// authenticated connection: it must never panic or over-allocate, and it
// may accept only frames that carry the right tag at the right count, so
// whatever it accepts must be exactly what the writer with the same key
// writes.
func FuzzDecodeTaggedFrame(f *testing.F) {
	key, _ := testKeys()
	for _, seed := range taggedSeeds(key) {
		f.Add(seed, uint16(64))
	}
	f.Add([]byte{0, 0, 0, 0x10, 0x10, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(64))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x81}, uint16(64))
	f.Fuzz(func(t *testing.T, in []byte, maxData uint16) {
		got, _ := decodeTagged(in, key, int(maxData))
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		fw := &frameWriter{w: bw, key: newFrameKey(key)}
		for _, fr := range got {
			if fr.typ >= frameExtension && fr.typ != frameRun {
				return // skipped, or reserved bytes dropped: not kept whole
			}
			if fr.typ == frameData && len(fr.data) > int(maxData) {
				t.Fatalf("accepted a %d-byte message over max %d", len(fr.data), maxData)
			}
			if err := fw.write(fr); err != nil {
				t.Fatal(err)
			}
		}
		bw.Flush()
		if !bytes.HasPrefix(in, buf.Bytes()) {
			t.Fatalf("decoded frames re-encode as %x, not a prefix of %x", buf.Bytes(), in)
		}
	})
}

// taggedSeeds are streams of tagged frames as a session writes them.
func taggedSeeds(key []byte) [][]byte {
	enc := func(frames ...frame) []byte {
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		fw := &frameWriter{w: bw, key: newFrameKey(key)}
		for _, f := range frames {
			fw.write(f)
		}
		bw.Flush()
		return buf.Bytes()
	}
	return [][]byte{
		enc(frame{typ: frameCredit, value: 65536}, frame{typ: frameFeatures, value: featureRuns},
			frame{typ: frameData, value: 1, data: []byte("hello\n")}, frame{typ: frameAck, value: 1}),
		enc(frame{typ: frameRun, value: 1, n: 2, data: []byte("a\nb\n")}, frame{typ: framePing, value: 9},
			frame{typ: framePong, value: 9}, frame{typ: frameBye, data: []byte("bye")}),
		enc(frame{typ: frameError, data: []byte("no")}),
		enc(frame{typ: 0x9f, data: []byte{1, 2, 3}}, frame{typ: frameData, value: 1}),
	}
}
