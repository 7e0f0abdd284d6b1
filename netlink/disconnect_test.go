package netlink

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// freezer holds what the connections it wraps have read until it thaws:
// a peer that is alive but does not answer.
type freezer struct {
	mu     sync.Mutex
	frozen chan struct{} // nil when thawed
}

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen == nil {
		f.frozen = make(chan struct{})
	}
}

func (f *freezer) thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen != nil {
		close(f.frozen)
		f.frozen = nil
	}
}

func (f *freezer) wrap(c net.Conn) net.Conn {
	return &frozenConn{Conn: c, f: f, closed: make(chan struct{})}
}

type frozenConn struct {
	net.Conn
	f         *freezer
	closeOnce sync.Once
	closed    chan struct{}
}

// Read waits after reading, so that bytes that arrive while frozen are
// held back even from a Read that was already waiting.
func (c *frozenConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.f.mu.Lock()
	ch := c.f.frozen
	c.f.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-c.closed:
		}
	}
	return n, err
}

func (c *frozenConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// frozenPair is a dialling link up with an acceptor whose reads the test
// can freeze.
func frozenPair(t *testing.T) (l *Link, ea, eb *memEndpoint, f *freezer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	eb = newMemEndpoint(1 << 20)
	sb, _ := NewSession(testConfig(t), eb)
	t.Cleanup(func() { sb.Close() })
	f = &freezer{}
	t.Cleanup(f.thaw)
	acc := startAcceptorWrapped(t, ctx, sb, f.wrap)
	ea = newMemEndpoint(1 << 20)
	cfg := fastLink(t, ea)
	cfg.Dial = tcpDial(acc.ln.Addr().String(), nil)
	l, _ = NewLink(cfg)
	startLink(t, l)
	waitState(t, l, StateUp)
	return l, ea, eb, f
}

// Disconnect does not wait for the peer: with a peer that cannot answer,
// it returns at once and the link shows down; the BYE arrives once the
// peer reads again, and the link stays down until Reconnect.
func TestLinkDisconnectDoesNotWait(t *testing.T) {
	checkLeaks(t)
	l, ea, eb, f := frozenPair(t)
	f.freeze()
	done := make(chan struct{})
	go func() {
		l.Disconnect("bye for now")
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(failAfter):
		t.Fatal("Disconnect is waiting for an unresponsive peer")
	}
	if st := l.Stats(); st.State != StateDown || !strings.Contains(st.Reason, "bye for now") {
		t.Fatalf("right after Disconnect: state %v (%q), want down with the text", st.State, st.Reason)
	}
	f.thaw()
	if got := eb.recv(t); got != "BYE bye for now\n" {
		t.Fatalf("peer received %q, want the BYE", got)
	}
	ea.sendN("later", 3) // waits: the link stays down
	waitFor(t, "the connection to end", func() bool { return l.Session().Stats().State != StateUp })
	if st := l.Stats(); st.State != StateDown || st.Connections != 1 {
		t.Fatalf("after the BYE: state %v, %d connections; want down, 1", st.State, st.Connections)
	}
	l.Reconnect()
	eb.expectN(t, "later", 0, 3)
}

// A Reconnect that comes while the BYE is still on its way (a write right
// after disconnect) is not lost when that connection ends: the link
// connects again by itself.
func TestLinkReconnectWhileByeInFlight(t *testing.T) {
	checkLeaks(t)
	l, ea, eb, f := frozenPair(t)
	f.freeze()
	l.Disconnect("brb")
	l.Reconnect()
	if st := l.Stats(); st.State != StateConnecting {
		t.Fatalf("after Reconnect: state %v, want connecting", st.State)
	}
	ea.sendN("after", 5)
	f.thaw()
	if got := eb.recv(t); got != "BYE brb\n" {
		t.Fatalf("peer received %q, want the BYE first", got)
	}
	eb.expectN(t, "after", 0, 5)
	if st := waitState(t, l, StateUp); st.Connections < 2 {
		t.Fatalf("%d connections, want a second one", st.Connections)
	}
}

// BeginDisconnect arranges the BYE before it returns and never waits.
func TestBeginDisconnectDoesNotWait(t *testing.T) {
	checkLeaks(t)
	l, _, eb, f := frozenPair(t)
	_ = l
	f.freeze()
	sess := l.Session()
	sess.BeginDisconnect("now")
	f.thaw()
	if got := eb.recv(t); got != "BYE now\n" {
		t.Fatalf("peer received %q, want the BYE", got)
	}
}
