package netlink

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// FuzzHandshake plays an arbitrary peer against both sides of the
// handshake, with and without a secret: no input may panic, and no input
// may get past a secret without a proof. The parsers must round-trip
// whatever they accept.
func FuzzHandshake(f *testing.F) {
	h := validHello()
	c := validHello()
	c.name = ""
	var toAcceptor, toDialer []byte
	toAcceptor = appendFrame(toAcceptor, frame{typ: frameHello, data: h.marshal()})
	toAcceptor = appendFrame(toAcceptor, frame{typ: frameAuth, data: auth{recvSeq: 3}.marshal()})
	toDialer = appendFrame(toDialer, frame{typ: frameChallenge, data: c.marshal()})
	toDialer = appendFrame(toDialer, frame{typ: frameAuth, data: auth{recvSeq: 3, proof: make([]byte, proofSize)}.marshal()})
	f.Add(toAcceptor, false)
	f.Add(toAcceptor, true)
	f.Add(toDialer, false)
	f.Add(toDialer, true)
	f.Add(appendFrame(nil, frame{typ: frameBye, data: []byte("no")}), false)
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), false)
	f.Fuzz(func(t *testing.T, in []byte, withSecret bool) {
		if p, err := parseHello(in); err == nil && !bytes.Equal(p.marshal(), in) {
			t.Fatalf("parseHello accepted %x but marshals %x", in, p.marshal())
		}
		if a, err := parseAuth(in); err == nil && !bytes.Equal(a.marshal(), in) {
			t.Fatalf("parseAuth accepted %x but marshals %x", in, a.marshal())
		}
		s := side(newSessionID(), 1<<20, "", 0)
		if withSecret {
			s.secret = []byte("secret")
		}
		for _, role := range []Role{Dialer, Acceptor} {
			hs := &handshaker{side: s, w: io.Discard, fr: &frameReader{r: bufio.NewReader(bytes.NewReader(in))}}
			var res *handshakeResult
			var err error
			if role == Dialer {
				res, err = hs.dial()
			} else {
				res, err = hs.accept()
			}
			if err != nil {
				continue
			}
			if withSecret {
				t.Fatalf("%v: handshake with a secret succeeded without the secret", role)
			}
			if res.maxMessage > 1<<20 || res.maxMessage < 1 {
				t.Fatalf("%v: negotiated max message %d", role, res.maxMessage)
			}
		}
	})
}
