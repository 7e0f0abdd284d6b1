package netlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testServer runs a Server on a loopback listener; every accepted session
// gets a memory endpoint, recorded by the name its peer asked for.
type testServer struct {
	srv  *Server
	addr string
	mu   sync.Mutex
	eps  map[string]*memEndpoint
	sess map[string]*Session
	// refuse, if set, refuses peers asking for this name.
	refuse string
	// capacity is the inbox size of new sessions' endpoints.
	capacity int64
	// stop ends Serve and waits for it to return.
	stop func()
}

func startServer(t *testing.T, tweak func(*ServerConfig)) *testServer {
	t.Helper()
	ts := &testServer{eps: map[string]*memEndpoint{}, sess: map[string]*Session{}, capacity: 1 << 20}
	cfg := ServerConfig{Config: testConfig(t)}
	cfg.Accept = func(s *Session) (Endpoint, error) {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if s.PeerName() == ts.refuse && ts.refuse != "" {
			return nil, fmt.Errorf("name %q is taken", s.PeerName())
		}
		ep := newMemEndpoint(ts.capacity)
		ts.eps[s.PeerName()] = ep
		ts.sess[s.PeerName()] = s
		return ep, nil
	}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(t, func() error { return srv.Serve(ctx, ln) })
	ts.stop = sync.OnceFunc(func() {
		cancel()
		if err := wait(t, "Serve", done); !errors.Is(err, context.Canceled) {
			t.Errorf("Serve = %v, want context.Canceled", err)
		}
	})
	t.Cleanup(func() {
		ts.stop()
		ts.mu.Lock()
		defer ts.mu.Unlock()
		for _, s := range ts.sess {
			s.Close()
		}
	})
	return ts
}

func (ts *testServer) endpoint(t *testing.T, name string) *memEndpoint {
	t.Helper()
	var ep *memEndpoint
	waitFor(t, "session "+name, func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		ep = ts.eps[name]
		return ep != nil
	})
	return ep
}

func (ts *testServer) client(t *testing.T, name string, tweak func(*LinkConfig)) (*Link, *memEndpoint) {
	t.Helper()
	cfg := fastLink(t, newMemEndpoint(1<<20))
	cfg.Name = name
	cfg.Dial = tcpDial(ts.addr, nil)
	if tweak != nil {
		tweak(&cfg)
	}
	ep := cfg.Endpoint.(*memEndpoint)
	l, err := NewLink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	startLink(t, l)
	return l, ep
}

// Three clients get three sessions, named as they asked; a client that
// reconnects resumes its own session.
func TestServerSessions(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, nil)
	var clients []*Link
	var ceps []*memEndpoint
	for i := range 3 {
		l, ep := ts.client(t, fmt.Sprint("c", i), nil)
		clients, ceps = append(clients, l), append(ceps, ep)
		ep.sendN(fmt.Sprint("from c", i), 50)
	}
	for i := range 3 {
		sep := ts.endpoint(t, fmt.Sprint("c", i))
		sep.expectN(t, fmt.Sprint("from c", i), 0, 50)
		sep.sendN(fmt.Sprint("to c", i), 50)
		ceps[i].expectN(t, fmt.Sprint("to c", i), 0, 50)
	}
	if n := ts.srv.Sessions(); n != 3 {
		t.Fatalf("server has %d sessions, want 3", n)
	}
	// Cut client 1's connection: it redials and resumes, no new session.
	s1 := clients[1].Session()
	s1.mu.Lock()
	s1.conn.conn.Close()
	s1.mu.Unlock()
	ceps[1].sendN("more", 20)
	ts.endpoint(t, "c1").expectN(t, "more", 0, 20)
	if n := ts.srv.Sessions(); n != 3 {
		t.Fatalf("server has %d sessions after a reconnect, want 3", n)
	}
	waitFor(t, "a second connection", func() bool { return clients[1].Stats().Connections == 2 })
	// Closing a session makes the server forget it.
	ts.mu.Lock()
	ts.sess["c2"].Close()
	ts.mu.Unlock()
	if n := ts.srv.Sessions(); n != 2 {
		t.Fatalf("server has %d sessions after a close, want 2", n)
	}
}

// A refusal from Accept reaches the client as the reason it retries.
func TestServerAcceptRefuses(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, nil)
	ts.refuse = "taken"
	l, ep := ts.client(t, "taken", nil)
	ep.sendN("x", 3)
	waitFor(t, "the refusal", func() bool { return strings.Contains(l.Stats().Reason, `name "taken" is taken`) })
	if st := l.Stats(); st.State != StateConnecting {
		t.Errorf("stats %+v, want connecting with the server's text", st)
	}
	if n := ts.srv.Sessions(); n != 0 {
		t.Errorf("server kept %d sessions", n)
	}
}

// A peer with the wrong secret is refused before any session is made.
func TestServerWrongSecret(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, func(c *ServerConfig) { c.Secret = []byte("right") })
	l, ep := ts.client(t, "x", func(c *LinkConfig) { c.Secret = []byte("wrong") })
	ep.sendN("x", 3)
	waitFor(t, "the refusal", func() bool { return strings.Contains(l.Stats().Reason, "wrong secret") })
	if n := ts.srv.Sessions(); n != 0 {
		t.Errorf("server made %d sessions for a wrong secret", n)
	}
	if out, taken, _ := ep.counts(); out != 3 || taken != 0 {
		t.Errorf("%d waiting, %d taken", out, taken)
	}
	// The right secret gets in.
	_, ep2 := ts.client(t, "y", func(c *LinkConfig) { c.Secret = []byte("right") })
	ep2.sendN("y", 3)
	ts.endpoint(t, "y").expectN(t, "y", 0, 3)
}

// Silent connections hold at most MaxHandshakes slots for at most the
// handshake timeout; beyond that they are closed at once; garbage is
// closed at once. A real client still gets in.
func TestServerHostileConnections(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, func(c *ServerConfig) {
		c.MaxHandshakes = 4
		c.HandshakeTimeout = 300 * time.Millisecond
	})
	var conns []net.Conn
	closedBy := func(c net.Conn) error {
		c.SetReadDeadline(time.Now().Add(failAfter))
		_, err := io.Copy(io.Discard, c)
		if errors.Is(err, syscall.ECONNRESET) {
			return nil // closed with our bytes unread
		}
		return err
	}
	for range 40 {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	garbage, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	garbage.Write([]byte{0xff, 0xff, 0xff, 0xff, 1})
	// Every one of them is closed by the server, without our help.
	for i, c := range append(conns, garbage) {
		if err := closedBy(c); err != nil {
			t.Fatalf("connection %d not closed by the server: %v", i, err)
		}
		c.Close()
	}
	_, ep := ts.client(t, "real", nil)
	ep.sendN("r", 5)
	ts.endpoint(t, "real").expectN(t, "r", 0, 5)
}

// When Serve ends (`unlink` of a listening pipe), the sessions it made
// keep their connections: messages go on flowing both ways, on the same
// connection.
func TestServerStopKeepsConnections(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, nil)
	l, ep := ts.client(t, "c", nil)
	ep.sendN("before", 5)
	sep := ts.endpoint(t, "c")
	sep.expectN(t, "before", 0, 5)
	ts.stop()
	ep.sendN("after", 5)
	sep.expectN(t, "after", 0, 5)
	sep.sendN("back", 5)
	ep.expectN(t, "back", 0, 5)
	if st := l.Stats(); st.State != StateUp || st.Connections != 1 {
		t.Errorf("client %+v; want up on its first connection", st)
	}
}
