package netlink

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func validHello() *hello {
	h := &hello{version: 1, id: newSessionID(), maxMessage: 4096, name: "jobs"}
	h.nonce[0] = 1
	return h
}

func TestHelloRoundTrip(t *testing.T) {
	h := validHello()
	got, err := parseHello(h.marshal())
	if err != nil {
		t.Fatal(err)
	}
	if *got != *h {
		t.Fatalf("parsed %+v, want %+v", got, h)
	}
	if n := len(h.marshal()); n != helloFixedSize+4 {
		t.Fatalf("HELLO body is %d bytes, want %d", n, helloFixedSize+4)
	}
}

func TestParseHelloRejects(t *testing.T) {
	good := validHello().marshal()
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		in   []byte
		want error
		msg  string
	}{
		{"short", good[:20], ErrHandshake, "want at least 61"},
		{"bad magic", mod(func(b []byte) []byte { b[0] = 'X'; return b }), ErrHandshake, "bad magic"},
		{"version 0", mod(func(b []byte) []byte { b[4], b[5] = 0, 0; return b }), ErrVersion, "version 0"},
		{"name longer than body", mod(func(b []byte) []byte { b[60] = 9; return b }), ErrHandshake, "9-byte name"},
		{"trailing bytes", append(bytes.Clone(good), 'x'), ErrHandshake, "4-byte name"},
		{"max message 0", mod(func(b []byte) []byte { copy(b[56:60], []byte{0, 0, 0, 0}); return b }), ErrHandshake, "max message 0"},
		{"name not UTF-8", mod(func(b []byte) []byte { b[61] = 0xff; return b }), ErrHandshake, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseHello(tt.in)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("parseHello error %v, want %v mentioning %q", err, tt.want, tt.msg)
			}
		})
	}
}

func TestParseAuth(t *testing.T) {
	proof := bytes.Repeat([]byte{7}, proofSize)
	for _, a := range []auth{{recvSeq: 5}, {recvSeq: 1 << 60, proof: proof}} {
		got, err := parseAuth(a.marshal())
		if err != nil || got.recvSeq != a.recvSeq || !bytes.Equal(got.proof, a.proof) {
			t.Fatalf("parseAuth(marshal(%+v)) = %+v, %v", a, got, err)
		}
	}
	for _, bad := range [][]byte{{1, 2}, append(make([]byte, 8), 5, 1, 2, 3, 4, 5), append(make([]byte, 8), 0, 1)} {
		if _, err := parseAuth(bad); !errors.Is(err, ErrHandshake) {
			t.Errorf("parseAuth(%x) = %v, want ErrHandshake", bad, err)
		}
	}
}

// A proof depends on every input, and on the role.
func TestProofBinding(t *testing.T) {
	secret, h, c := []byte("s"), []byte("hello"), []byte("challenge")
	base := makeProof(secret, labelDialer, h, c, 1)
	variants := map[string][]byte{
		"role":      makeProof(secret, labelAcceptor, h, c, 1),
		"secret":    makeProof([]byte("t"), labelDialer, h, c, 1),
		"hello":     makeProof(secret, labelDialer, []byte("hellp"), c, 1),
		"challenge": makeProof(secret, labelDialer, h, []byte("challengf"), 1),
		"seq":       makeProof(secret, labelDialer, h, c, 2),
		"boundary":  makeProof(secret, labelDialer, []byte("hellocha"), []byte("llenge"), 1),
	}
	for name, p := range variants {
		if bytes.Equal(p, base) {
			t.Errorf("changing the %s does not change the proof", name)
		}
	}
}

// handshakePipe runs both sides of a handshake over net.Pipe.
func handshakePipe(t *testing.T, d, a handshakeSide) (dr, ar *handshakeResult, derr, aerr error) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs := &handshaker{side: a, w: c2, fr: &frameReader{r: bufio.NewReader(c2)}}
		ar, aerr = hs.accept()
		if aerr != nil {
			c2.Close()
		}
	}()
	hs := &handshaker{side: d, w: c1, fr: &frameReader{r: bufio.NewReader(c1)}}
	dr, derr = hs.dial()
	if derr != nil {
		c1.Close()
	}
	<-done
	return
}

func side(id SessionID, maxMessage int, name string, seq uint64) handshakeSide {
	return handshakeSide{
		maxMessage: maxMessage, name: name,
		localID: func(SessionID) SessionID { return id },
		resolve: func(*hello) (uint64, error) { return seq, nil },
	}
}

func TestHandshakeExchange(t *testing.T) {
	checkLeaks(t)
	idD, idA := newSessionID(), newSessionID()
	d, a := side(idD, 1000, "wanted", 7), side(idA, 500, "", 9)
	d.secret, a.secret = []byte("k"), []byte("k")
	dr, ar, derr, aerr := handshakePipe(t, d, a)
	if derr != nil || aerr != nil {
		t.Fatal(derr, aerr)
	}
	if dr.peer.id != idA || ar.peer.id != idD || dr.localID != idD || ar.localID != idA {
		t.Errorf("IDs crossed wrong: dialer saw %v, acceptor saw %v", dr.peer.id, ar.peer.id)
	}
	if dr.maxMessage != 500 || ar.maxMessage != 500 {
		t.Errorf("max message %d / %d, want the smaller, 500", dr.maxMessage, ar.maxMessage)
	}
	if dr.peerRecvSeq != 9 || ar.peerRecvSeq != 7 || dr.localSeq != 7 || ar.localSeq != 9 {
		t.Errorf("resume points: dialer got %d, acceptor got %d; want 9 and 7", dr.peerRecvSeq, ar.peerRecvSeq)
	}
	if ar.peer.name != "wanted" {
		t.Errorf("acceptor saw name %q", ar.peer.name)
	}
}

// The acceptor answers a newer dialer with its own version; a dialer told
// a version newer than its own refuses; either refuses a peer that speaks
// only version 1 (whose frames carry no tags), saying why.
func TestHandshakeVersions(t *testing.T) {
	t.Run("acceptor answers a newer dialer", func(t *testing.T) {
		checkLeaks(t)
		fr, errA := rawAcceptorHandshake(t, 9)
		f, err := fr.next()
		if err != nil || f.typ != frameChallenge {
			t.Fatalf("got %v, %v; want CHALLENGE", f, err)
		}
		if c, err := parseHello(f.data); err != nil || c.version != protocolVersion {
			t.Fatalf("CHALLENGE %+v, %v; want version %d", c, err, protocolVersion)
		}
		_ = errA // ends when the test closes the connection
	})
	t.Run("acceptor refuses version 1", func(t *testing.T) {
		checkLeaks(t)
		fr, errA := rawAcceptorHandshake(t, 1)
		f, err := fr.next()
		if err != nil || f.typ != frameError || !strings.Contains(string(f.data), "needs version 2 or later") {
			t.Fatalf("got %v %q, %v; want ERROR saying version 2 is needed", f.typ, f.data, err)
		}
		if err := wait(t, "acceptor", errA); !errors.Is(err, ErrVersion) {
			t.Fatalf("acceptor = %v, want ErrVersion", err)
		}
	})
	for _, v := range []uint16{1, protocolVersion + 1} {
		t.Run(fmt.Sprintf("dialer refuses version %d", v), func(t *testing.T) {
			checkLeaks(t)
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			errD := runAsync(t, func() error {
				hs := &handshaker{side: side(newSessionID(), 100, "", 0), w: c1, fr: &frameReader{r: bufio.NewReader(c1)}}
				_, err := hs.dial()
				c1.Close()
				return err
			})
			fr := &frameReader{r: bufio.NewReader(c2)}
			if f, err := fr.next(); err != nil || f.typ != frameHello {
				t.Fatalf("got %v, %v; want HELLO", f, err)
			}
			ch := validHello()
			ch.version, ch.name = v, ""
			c2.Write(appendFrame(nil, frame{typ: frameChallenge, data: ch.marshal()}))
			if f, err := fr.next(); err != nil || f.typ != frameError {
				t.Fatalf("got %v, %v; want the refusal", f, err)
			}
			if err := wait(t, "dialer", errD); !errors.Is(err, ErrVersion) {
				t.Fatalf("dialer = %v, want ErrVersion", err)
			}
		})
	}
}

// rawAcceptorHandshake runs an acceptor's handshake against a HELLO of
// the given version, returning a reader of what the acceptor answers.
func rawAcceptorHandshake(t *testing.T, version uint16) (*frameReader, <-chan error) {
	c1, c2 := net.Pipe()
	errA := runAsync(t, func() error {
		hs := &handshaker{side: side(newSessionID(), 100, "", 0), w: c2, fr: &frameReader{r: bufio.NewReader(c2)}}
		_, err := hs.accept()
		c2.Close()
		return err
	})
	t.Cleanup(func() { c1.Close() }) // before runAsync's wait: cleanups run last first
	h := validHello()
	h.version = version
	c1.Write(appendFrame(nil, frame{typ: frameHello, data: h.marshal()}))
	return &frameReader{r: bufio.NewReader(c1)}, errA
}

// A peer that connects and says nothing is dropped after the handshake
// timeout; garbage is dropped at once. Neither touches the session.
func TestHandshakeTimeoutAndGarbage(t *testing.T) {
	tests := []struct {
		name  string
		send  []byte
		check func(error) bool
	}{
		{"silent", nil, func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }},
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), func(err error) bool { return errors.Is(err, ErrBadFrame) }},
		{"wrong first frame", appendFrame(nil, frame{typ: frameAck, value: 1}), func(err error) bool { return errors.Is(err, ErrHandshake) }},
		{"bad hello", appendFrame(nil, frame{typ: frameHello, data: []byte("PFSLxx")}), func(err error) bool { return errors.Is(err, ErrHandshake) }},
		{"truncated", []byte{0, 0, 0, 50, 1, 2, 3}, func(err error) bool { return errors.Is(err, ErrBadFrame) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			cfg := testConfig(t)
			cfg.HandshakeTimeout = 50 * time.Millisecond
			ep := newMemEndpoint(100)
			s, err := NewSession(cfg, ep)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c1, c2 := net.Pipe()
			defer c1.Close()
			errS := runAsync(t, func() error { return s.Run(context.Background(), c2, Acceptor) })
			go func() {
				c1.Write(tt.send)
				if tt.name == "truncated" {
					c1.Close()
				}
			}()
			go io.Copy(io.Discard, c1)
			if err := wait(t, "Run", errS); !tt.check(err) {
				t.Fatalf("Run = %v", err)
			}
			if st := s.Stats(); st.Connections != 0 || st.State != StateDown {
				t.Fatalf("session stats %+v after a failed handshake", st)
			}
		})
	}
}
