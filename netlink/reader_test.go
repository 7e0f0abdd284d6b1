package netlink

import (
	"errors"
	"net"
	"testing"
)

// rawAcceptor runs a session as acceptor against a raw peer, which drains
// whatever the session writes, and returns the peer after the handshake.
func rawAcceptor(t *testing.T, ep Endpoint) (*rawPeer, <-chan error) {
	t.Helper()
	s, err := NewSession(testConfig(t), ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close() })
	errS := runAsync(t, func() error { return s.Run(t.Context(), c2, Acceptor) })
	peer, err := dialRaw(c1, newSessionID(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return peer, errS
}

// drain reads and discards what the session writes until the connection
// ends, so that it never blocks on the unbuffered pipe.
func (r *rawPeer) drain(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := r.fr.next(); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { r.conn.Close(); <-done })
}

// A peer's words in BYE and ERROR stay on one line: the BYE is delivered
// as one line, and the reason shows control characters as \xNN.
func TestSessionPeerWordsCleaned(t *testing.T) {
	t.Run("BYE", func(t *testing.T) {
		checkLeaks(t)
		ep := newMemEndpoint(1 << 20)
		peer, errS := rawAcceptor(t, ep)
		peer.drain(t)
		peer.write(t, frame{typ: frameBye, data: []byte("a\nb\x1b")})
		if got, want := ep.recv(t), `BYE a\x0ab\x1b`+"\n"; got != want {
			t.Errorf("delivered %q, want %q", got, want)
		}
		var bye *ByeError
		if err := wait(t, "Run", errS); !errors.As(err, &bye) || bye.Text != `a\x0ab\x1b` {
			t.Errorf("Run = %v, want a ByeError with the text cleaned", err)
		}
	})
	t.Run("ERROR", func(t *testing.T) {
		checkLeaks(t)
		peer, errS := rawAcceptor(t, newMemEndpoint(1<<20))
		peer.drain(t)
		peer.write(t, frame{typ: frameError, data: []byte("x\noutbox 0")})
		err := wait(t, "Run", errS)
		mustContain(t, err, `refused by peer: x\x0aoutbox 0`)
	})
}
