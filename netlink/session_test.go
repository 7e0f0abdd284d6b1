package netlink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

// sessionPair is two sessions, each with a memory endpoint.
type sessionPair struct {
	a, b   *Session
	ea, eb *memEndpoint
	cfgA   Config
	cfgB   Config
	ctx    context.Context
	cancel context.CancelFunc
}

func newSessionPair(t *testing.T, capacity int64, tweak func(a, b *Config)) *sessionPair {
	t.Helper()
	p := &sessionPair{ea: newMemEndpoint(capacity), eb: newMemEndpoint(capacity)}
	p.cfgA, p.cfgB = testConfig(t), testConfig(t)
	if tweak != nil {
		tweak(&p.cfgA, &p.cfgB)
	}
	var err error
	if p.a, err = NewSession(p.cfgA, p.ea); err != nil {
		t.Fatal(err)
	}
	if p.b, err = NewSession(p.cfgB, p.eb); err != nil {
		t.Fatal(err)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	t.Cleanup(func() {
		p.cancel()
		p.a.Close()
		p.b.Close()
	})
	return p
}

// connect runs a as dialer and b as acceptor over a fresh net.Pipe.
func (p *sessionPair) connect(t *testing.T) (ca, cb net.Conn, errA, errB <-chan error) {
	ca, cb = net.Pipe()
	errA = runAsync(t, func() error { return p.a.Run(p.ctx, ca, Dialer) })
	errB = runAsync(t, func() error { return p.b.Run(p.ctx, cb, Acceptor) })
	t.Cleanup(p.cancel) // before the waits for the Runs
	return ca, cb, errA, errB
}

func TestSessionExchange(t *testing.T) {
	checkLeaks(t)
	p := newSessionPair(t, 1<<20, nil)
	p.ea.sendN("a", 1000)
	p.eb.sendN("b", 1000)
	_, _, errA, errB := p.connect(t)
	p.eb.expectN(t, "a", 0, 1000)
	p.ea.expectN(t, "b", 0, 1000)
	waitFor(t, "both outboxes acknowledged", func() bool {
		return p.a.Stats().Outbox == 0 && p.b.Stats().Outbox == 0
	})
	if st := p.a.Stats(); st.State != StateUp || st.Sent != 1000 || st.Received != 1000 || st.Resent != 0 || st.Connections != 1 {
		t.Errorf("a's stats %+v, want up, 1000 sent and received, none resent", st)
	}
	p.cancel()
	if err := wait(t, "a's Run", errA); !errors.Is(err, context.Canceled) {
		t.Errorf("a's Run = %v, want context.Canceled", err)
	}
	wait(t, "b's Run", errB)
	p.ea.checkNoOverflow(t)
	p.eb.checkNoOverflow(t)
}

// Messages written while the connection is cut are resumed on the next
// one, exactly once, with any number of cuts.
func TestSessionResume(t *testing.T) {
	checkLeaks(t)
	p := newSessionPair(t, 1<<20, nil)
	const rounds, per = 5, 300
	for r := range rounds {
		p.ea.sendN(fmt.Sprint("a", r), per)
		p.eb.sendN(fmt.Sprint("b", r), per)
		ca, _, errA, errB := p.connect(t)
		p.eb.expectN(t, fmt.Sprint("a", r), 0, per)
		p.ea.expectN(t, fmt.Sprint("b", r), 0, per)
		ca.Close() // cut, whatever was in flight
		wait(t, "a's Run", errA)
		wait(t, "b's Run", errB)
	}
	for _, s := range []*Session{p.a, p.b} {
		if st := s.Stats(); st.Sent != rounds*per || st.Received != rounds*per || st.Connections != rounds || st.State != StateDown {
			t.Errorf("stats %+v, want %d sent and received over %d connections, down", st, rounds*per, rounds)
		}
	}
}

// fixed returns message i of a stream: exactly 10 bytes.
func fixed(i int) []byte { return fmt.Appendf(nil, "m%08d\n", i) }

// Credit: a receiver that does not read stops the sender exactly at its
// room, across a cut too; every message then arrives once, in order.
func TestSessionFlowControl(t *testing.T) {
	checkLeaks(t)
	const capacity = 100 // ten messages
	p := newSessionPair(t, capacity, func(a, b *Config) { a.MaxMessage, b.MaxMessage = 10, 10 })
	for i := range 50 {
		p.ea.send(fixed(i))
	}
	expectTaken := func(want int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d messages in the inbox", capacity/10), func() bool {
			_, _, in := p.eb.counts()
			return in == capacity/10
		})
		out, taken, _ := p.ea.counts()
		if taken != want || out != 50-want {
			t.Fatalf("sender took %d messages (%d left), want exactly %d: the receiver's room", taken, out, want)
		}
	}
	received := 0
	take := func(n int) {
		t.Helper()
		for range n {
			if got, want := p.eb.recv(t), string(fixed(received)); got != want {
				t.Fatalf("received %q, want %q", got, want)
			}
			received++
		}
	}
	ca, _, errA, errB := p.connect(t)
	expectTaken(10)
	take(5)
	expectTaken(15)
	ca.Close()
	wait(t, "a's Run", errA)
	wait(t, "b's Run", errB)
	take(3)
	_, _, errA, errB = p.connect(t)
	expectTaken(18)
	take(42)
	p.cancel()
	wait(t, "a's Run", errA)
	wait(t, "b's Run", errB)
	p.eb.checkNoOverflow(t)
}

func TestSessionDisconnect(t *testing.T) {
	checkLeaks(t)
	p := newSessionPair(t, 1<<20, nil)
	p.ea.sendN("a", 100)
	_, _, errA, errB := p.connect(t)
	p.eb.expectN(t, "a", 0, 100)
	if err := p.a.Disconnect(p.ctx, "see you"); err != nil {
		t.Fatal(err)
	}
	if got := p.eb.recv(t); got != "BYE see you\n" {
		t.Fatalf("peer received %q, want %q", got, "BYE see you\n")
	}
	if err := wait(t, "a's Run", errA); !errors.Is(err, ErrDisconnected) {
		t.Errorf("disconnecting side's Run = %v, want ErrDisconnected", err)
	}
	var bye *ByeError
	if err := wait(t, "b's Run", errB); !errors.As(err, &bye) || bye.Text != "see you" {
		t.Errorf("peer's Run = %v, want a ByeError with text %q", err, "see you")
	}
	// The session goes on over a new connection.
	p.ea.sendN("a", 100)
	p.connect(t)
	p.eb.expectN(t, "a", 0, 100)
	if err := p.b.Disconnect(p.ctx, ""); err != nil {
		t.Fatal(err)
	}
	if got := p.ea.recv(t); got != "BYE\n" {
		t.Fatalf("peer received %q, want %q", got, "BYE\n")
	}
	// Without a connection there is nothing to do.
	if err := p.b.Disconnect(p.ctx, "again"); err != nil {
		t.Fatal(err)
	}
}

func TestSessionSecrets(t *testing.T) {
	tests := []struct {
		name         string
		secretA      string
		secretB      string
		wantA, wantB error
		msgA         string
	}{
		{"same secret", "s3cret", "s3cret", nil, nil, ""},
		{"no secrets", "", "", nil, nil, ""},
		{"wrong secret", "s3cret", "other", ErrRefused, ErrAuth, "wrong secret"},
		// The refused side reads the reason from its own point of view.
		{"only dialer has one", "s3cret", "", ErrRefused, ErrAuth, "the peer has no secret, and this side requires one"},
		{"only acceptor has one", "", "s3cret", ErrRefused, ErrAuth, "the peer requires a secret, and this side has none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			p := newSessionPair(t, 1<<20, func(a, b *Config) { a.Secret, b.Secret = []byte(tt.secretA), []byte(tt.secretB) })
			p.ea.sendN("a", 10)
			p.eb.sendN("b", 10)
			_, _, errA, errB := p.connect(t)
			if tt.wantA == nil {
				p.eb.expectN(t, "a", 0, 10)
				p.ea.expectN(t, "b", 0, 10)
				p.cancel()
				wait(t, "a", errA)
				wait(t, "b", errB)
				return
			}
			ea, eb := wait(t, "a", errA), wait(t, "b", errB)
			if !errors.Is(ea, tt.wantA) || !errors.Is(eb, tt.wantB) {
				t.Fatalf("Run errors %v / %v, want %v / %v", ea, eb, tt.wantA, tt.wantB)
			}
			mustContain(t, ea, tt.msgA)
			// No message crossed, none was taken from either outbox.
			for _, e := range []*memEndpoint{p.ea, p.eb} {
				if out, taken, in := e.counts(); out != 10 || taken != 0 || in != 0 {
					t.Errorf("endpoint has %d waiting, %d taken, %d received; want 10, 0, 0", out, taken, in)
				}
			}
		})
	}
}

// A local message over the negotiated max message fails the connection
// with a clear error on both sides, and is handed back by Close.
func TestSessionMessageTooLarge(t *testing.T) {
	checkLeaks(t)
	p := newSessionPair(t, 1<<20, func(a, b *Config) { a.MaxMessage, b.MaxMessage = 100, 10 })
	p.ea.send([]byte("short\n"), []byte("this one is too long\n"), []byte("after\n"))
	_, _, errA, errB := p.connect(t)
	if got := p.eb.recv(t); got != "short\n" {
		t.Fatalf("received %q", got)
	}
	if err := wait(t, "a", errA); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("sender's Run = %v, want ErrMessageTooLarge", err)
	}
	err := wait(t, "b", errB)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "21 bytes, the link's max is 10") {
		t.Errorf("receiver's Run = %v, want the sender's reason", err)
	}
	// "short\n" may or may not have been acknowledged before the end, and
	// "after\n" may or may not have been taken.
	held := p.a.Close()
	want := []string{"this one is too long\n"}
	if out, _, _ := p.ea.counts(); out == 0 {
		want = append(want, "after\n")
	}
	if len(held) < len(want) || fmt.Sprintf("%q", held[len(held)-len(want):]) != fmt.Sprintf("%q", want) {
		t.Errorf("Close handed back %q, want it to end with %q", held, want)
	}
}
