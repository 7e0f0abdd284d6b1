package netlink

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"
)

// rawPeer is a hand-driven peer: it runs the dialer's handshake with a
// chosen session ID and resume point, then lets the test write and read
// frames itself.
type rawPeer struct {
	conn net.Conn
	fr   *frameReader
	res  *handshakeResult
}

func dialRaw(conn net.Conn, id SessionID, recvSeq uint64, maxMessage int) (*rawPeer, error) {
	hs := &handshaker{
		side: handshakeSide{
			maxMessage: maxMessage,
			localID:    func(SessionID) SessionID { return id },
			resolve:    func(*hello) (uint64, error) { return recvSeq, nil },
		},
		w:  conn,
		fr: &frameReader{r: bufio.NewReader(conn)},
	}
	res, err := hs.dial()
	if err != nil {
		return nil, err
	}
	hs.fr.maxData = res.maxMessage
	return &rawPeer{conn: conn, fr: hs.fr, res: res}, nil
}

func (r *rawPeer) write(t testing.TB, f frame) {
	t.Helper()
	if _, err := r.conn.Write(appendFrame(nil, f)); err != nil {
		t.Fatalf("raw peer writing %s: %v", f.typ, err)
	}
}

// readData reads frames until n DATA frames came, returning them.
func (r *rawPeer) readData(t testing.TB, n int) []frame {
	t.Helper()
	var got []frame
	for len(got) < n {
		f, err := r.fr.next()
		if err != nil {
			t.Fatalf("raw peer reading: %v", err)
		}
		if f.typ == frameData {
			got = append(got, f)
		}
	}
	return got
}

// A peer that never reads: the session takes from its endpoint no more
// than the peer's credit, or its unacknowledged window, allows; the rest
// waits in the endpoint, and nothing is dropped.
func TestSessionPeerNeverReads(t *testing.T) {
	tests := []struct {
		name       string
		credit     uint64
		maxUnacked int
		wantTaken  int
	}{
		{"credit fills", 50, 0, 5},
		{"window fills", 1 << 30, 7, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			cfg := testConfig(t)
			cfg.MaxUnacked = tt.maxUnacked
			ep := newMemEndpoint(1 << 20)
			s, err := NewSession(cfg, ep)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 100 {
				ep.send(fixed(i))
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c1, c2 := net.Pipe()
			errS := runAsync(t, func() error { return s.Run(ctx, c2, Acceptor) })
			peer, err := dialRaw(c1, newSessionID(), 0, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			peer.write(t, frame{typ: frameCredit, value: tt.credit})
			// From here the peer reads nothing: net.Pipe has no buffer,
			// so the session's first write already blocks.
			waitFor(t, "the session to take its window", func() bool {
				return s.Stats().Outbox == tt.wantTaken
			})
			if out, taken, _ := ep.counts(); taken != tt.wantTaken || out != 100-tt.wantTaken {
				t.Fatalf("took %d (%d left), want exactly %d", taken, out, tt.wantTaken)
			}
			c1.Close()
			if err := wait(t, "Run", errS); err == nil {
				t.Fatal("Run returned nil after the peer went away")
			}
			held := s.Close()
			if len(held) != tt.wantTaken {
				t.Fatalf("Close handed back %d messages, want %d", len(held), tt.wantTaken)
			}
			for i, m := range held {
				if string(m) != string(fixed(i)) {
					t.Fatalf("held message %d is %q, want %q", i, m, fixed(i))
				}
			}
		})
	}
}

// A peer that comes back with a new session ID has lost its state: every
// message it had not acknowledged is sent again, renumbered from 1.
func TestSessionPeerRestarted(t *testing.T) {
	checkLeaks(t)
	p := newSessionPair(t, 1<<20, nil)
	for i := range 10 {
		p.ea.send(fixed(i))
	}
	c1, c2 := net.Pipe()
	errA := runAsync(t, func() error { return p.a.Run(p.ctx, c2, Acceptor) })
	peer, err := dialRaw(c1, newSessionID(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	peer.write(t, frame{typ: frameCredit, value: 1000})
	got := peer.readData(t, 10) // and never acknowledge
	if got[9].value != 10 {
		t.Fatalf("tenth DATA has seq %d", got[9].value)
	}
	c1.Close()
	wait(t, "Run", errA)

	// The real peer, b, is new to a.
	_, _, errB, errA2 := func() (net.Conn, net.Conn, <-chan error, <-chan error) {
		cb, ca := net.Pipe()
		eb := runAsync(t, func() error { return p.b.Run(p.ctx, cb, Dialer) })
		ea := runAsync(t, func() error { return p.a.Run(p.ctx, ca, Acceptor) })
		return cb, ca, eb, ea
	}()
	for i := range 10 {
		if m := p.eb.recv(t); m != string(fixed(i)) {
			t.Fatalf("received %q, want %q", m, fixed(i))
		}
	}
	if st := p.a.Stats(); st.Sent != 10 || st.Resent != 10 {
		t.Errorf("stats %+v, want 10 sent and 10 resent", st)
	}
	p.cancel()
	wait(t, "b", errB)
	wait(t, "a", errA2)
}

// A known peer that claims a resume point this side never sent is refused
// with ErrResume: resuming would lose or duplicate messages.
func TestSessionResumeMismatch(t *testing.T) {
	checkLeaks(t)
	ep := newMemEndpoint(1 << 20)
	s, err := NewSession(testConfig(t), ep)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ep.send(fixed(0), fixed(1))
	ctx := t.Context()
	id := newSessionID()

	c1, c2 := net.Pipe()
	errS := runAsync(t, func() error { return s.Run(ctx, c2, Acceptor) })
	peer, err := dialRaw(c1, id, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	peer.write(t, frame{typ: frameCredit, value: 1000})
	peer.readData(t, 2)
	c1.Close()
	wait(t, "Run", errS)

	c1, c2 = net.Pipe()
	errS = runAsync(t, func() error { return s.Run(ctx, c2, Acceptor) })
	peer, err = dialRaw(c1, id, 5, 1<<20) // but s has sent only 2
	if err != nil {
		t.Fatal(err)
	}
	f, err := peer.fr.next()
	if err != nil || f.typ != frameError {
		t.Fatalf("after a bad resume point the peer read %v, %v; want ERROR", f, err)
	}
	c1.Close()
	if err := wait(t, "Run", errS); !errors.Is(err, ErrResume) {
		t.Fatalf("Run = %v, want ErrResume", err)
	}
}

// Authenticated peers that break the session rules are cut off.
func TestSessionProtocolViolations(t *testing.T) {
	tests := []struct {
		name   string
		frames []frame
		want   string
	}{
		{"data beyond credit", []frame{{typ: frameData, value: 1, data: make([]byte, 50)}}, "beyond credit"},
		{"sequence gap", []frame{{typ: frameData, value: 2, data: []byte("x")}}, "DATA 2 after 0"},
		{"ack of unsent", []frame{{typ: frameAck, value: 1}}, "ACK 1 for a message not sent"},
		{"handshake frame", []frame{{typ: frameHello, data: []byte("x")}}, "unexpected HELLO"},
		{"oversized data", []frame{{typ: frameData, value: 1, data: make([]byte, 65)}}, "frame too large"},
		{"garbage", []frame{{typ: 0x42}}, "unknown frame type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			cfg := testConfig(t)
			cfg.MaxMessage = 64
			ep := newMemEndpoint(10)
			s, err := NewSession(cfg, ep)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c1, c2 := net.Pipe()
			errS := runAsync(t, func() error { return s.Run(t.Context(), c2, Acceptor) })
			peer, err := dialRaw(c1, newSessionID(), 0, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				// Drain what the session writes, so it never blocks.
				for {
					if _, err := peer.fr.next(); err != nil {
						return
					}
				}
			}()
			for _, f := range tt.frames {
				c1.Write(appendFrame(nil, f))
			}
			err = wait(t, "Run", errS)
			c1.Close()
			mustContain(t, err, tt.want)
			if _, _, in := ep.counts(); in != 0 {
				t.Fatalf("%d messages delivered", in)
			}
		})
	}
}

func TestSessionSelfConnect(t *testing.T) {
	checkLeaks(t)
	ep := newMemEndpoint(1 << 20)
	s, err := NewSession(testConfig(t), ep)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ep.sendN("x", 3)
	c1, c2 := net.Pipe()
	errD := runAsync(t, func() error { return s.Run(t.Context(), c1, Dialer) })
	errA := runAsync(t, func() error { return s.Run(t.Context(), c2, Acceptor) })
	for _, ch := range []<-chan error{errD, errA} {
		if err := wait(t, "Run", ch); !errors.Is(err, ErrSelfConnect) {
			t.Errorf("Run = %v, want ErrSelfConnect", err)
		}
	}
	if out, taken, in := ep.counts(); out != 3 || taken != 0 || in != 0 {
		t.Errorf("endpoint %d waiting, %d taken, %d received; want 3, 0, 0", out, taken, in)
	}
}
