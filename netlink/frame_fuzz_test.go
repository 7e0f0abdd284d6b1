package netlink

import (
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
