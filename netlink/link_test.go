package netlink

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// acceptorLoop serves every connection accepted on a loopback listener
// with s as acceptor, and lets the test cut the current one.
type acceptorLoop struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startAcceptor(t *testing.T, ctx context.Context, s *Session) *acceptorLoop {
	t.Helper()
	return startAcceptorWrapped(t, ctx, s, nil)
}

// startAcceptorWrapped is startAcceptor with every accepted connection
// passed through wrap (if not nil) before the session sees it.
func startAcceptorWrapped(t *testing.T, ctx context.Context, s *Session, wrap func(net.Conn) net.Conn) *acceptorLoop {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &acceptorLoop{ln: ln}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.conns = append(a.conns, c)
			a.mu.Unlock()
			if wrap != nil {
				c = wrap(c)
			}
			wg.Go(func() { s.Run(ctx, c, Acceptor) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		a.cutAll()
		wg.Wait()
	})
	return a
}

func (a *acceptorLoop) cutAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.conns {
		c.Close()
	}
	a.conns = nil
}

func tcpDial(addr string, count *atomic.Int64) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		if count != nil {
			count.Add(1)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

// startLink starts l.Run and stops it at cleanup.
func startLink(t *testing.T, l *Link) <-chan error {
	t.Helper()
	ch := runAsync(t, func() error { return l.Run(context.Background()) })
	t.Cleanup(func() { l.Close() })
	return ch
}

func fastLink(t *testing.T, ep Endpoint) LinkConfig {
	return LinkConfig{Config: testConfig(t), Endpoint: ep, BackoffMin: time.Millisecond, BackoffMax: 20 * time.Millisecond}
}

func waitState(t *testing.T, l *Link, want State) Stats {
	t.Helper()
	var st Stats
	waitFor(t, "link "+want.String(), func() bool {
		st = l.Stats()
		return st.State == want
	})
	return st
}

// A dialling link redials after every drop; messages both ways arrive
// exactly once, in order.
func TestLinkRedials(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	eb := newMemEndpoint(1 << 20)
	sb, _ := NewSession(testConfig(t), eb)
	t.Cleanup(func() { sb.Close() })
	acc := startAcceptor(t, ctx, sb)

	ea := newMemEndpoint(1 << 20)
	cfg := fastLink(t, ea)
	cfg.Dial = tcpDial(acc.ln.Addr().String(), nil)
	l, err := NewLink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	startLink(t, l)
	for round := range 5 {
		ea.sendN("a", 200)
		eb.sendN("b", 200)
		eb.expectN(t, "a", 0, 200)
		ea.expectN(t, "b", 0, 200)
		st := waitState(t, l, StateUp)
		if st.Peer != acc.ln.Addr().String() {
			t.Errorf("peer %q, want %q", st.Peer, acc.ln.Addr())
		}
		acc.cutAll()
		_ = round
	}
	waitFor(t, "acknowledgements", func() bool { return l.Stats().Outbox == 0 && sb.Stats().Outbox == 0 })
	st := l.Stats()
	if st.Sent != 1000 || st.Received != 1000 || st.Connections < 5 {
		t.Errorf("link stats %+v, want 1000 sent and received over at least 5 connections", st)
	}
}

// Disconnect sends BYE, closes, and keeps the link down until Reconnect;
// nothing is lost.
func TestLinkDisconnectReconnect(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	eb := newMemEndpoint(1 << 20)
	sb, _ := NewSession(testConfig(t), eb)
	t.Cleanup(func() { sb.Close() })
	acc := startAcceptor(t, ctx, sb)

	var dials atomic.Int64
	var parked atomic.Bool
	ea := newMemEndpoint(1 << 20)
	cfg := fastLink(t, ea)
	dial := tcpDial(acc.ln.Addr().String(), &dials)
	cfg.Dial = func(ctx context.Context) (net.Conn, error) {
		if parked.Load() {
			t.Errorf("dialled while disconnected")
		}
		return dial(ctx)
	}
	l, _ := NewLink(cfg)
	startLink(t, l)
	ea.sendN("a", 10)
	eb.expectN(t, "a", 0, 10)
	parked.Store(true)
	l.Disconnect("going away")
	if got := eb.recv(t); got != "BYE going away\n" {
		t.Fatalf("peer received %q, want %q", got, "BYE going away\n")
	}
	st := waitState(t, l, StateDown)
	if !strings.Contains(st.Reason, "going away") {
		t.Errorf("reason %q, want the BYE text", st.Reason)
	}
	ea.sendN("b", 10) // waits in the endpoint
	parked.Store(false)
	l.Reconnect()
	eb.expectN(t, "b", 0, 10)
	waitState(t, l, StateUp)
}

// The peer's BYE is delivered as a message, and the link connects again.
func TestLinkPeerBye(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	eb := newMemEndpoint(1 << 20)
	sb, _ := NewSession(testConfig(t), eb)
	t.Cleanup(func() { sb.Close() })
	acc := startAcceptor(t, ctx, sb)
	ea := newMemEndpoint(1 << 20)
	cfg := fastLink(t, ea)
	cfg.Dial = tcpDial(acc.ln.Addr().String(), nil)
	l, _ := NewLink(cfg)
	startLink(t, l)
	waitState(t, l, StateUp)
	waitFor(t, "acceptor session up", func() bool { return sb.Stats().State == StateUp })
	if err := sb.Disconnect(ctx, "later"); err != nil {
		t.Fatal(err)
	}
	if got := ea.recv(t); got != "BYE later\n" {
		t.Fatalf("received %q", got)
	}
	eb.sendN("x", 3)
	ea.expectN(t, "x", 0, 3)
	if st := l.Stats(); st.Connections < 2 {
		t.Errorf("stats %+v, want a second connection", st)
	}
}

// A wrong secret keeps the link connecting, retrying with backoff, with a
// clear reason: either side's secret may be the wrong one, and a stranger
// cannot be told from a partner with another secret. No message crosses.
func TestLinkWrongSecret(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	eb := newMemEndpoint(1 << 20)
	cfgB := testConfig(t)
	cfgB.Secret = []byte("right")
	sb, _ := NewSession(cfgB, eb)
	t.Cleanup(func() { sb.Close() })
	acc := startAcceptor(t, ctx, sb)
	eb.sendN("b", 5)

	var dials atomic.Int64
	ea := newMemEndpoint(1 << 20)
	cfg := fastLink(t, ea)
	cfg.Secret = []byte("wrong")
	cfg.Dial = tcpDial(acc.ln.Addr().String(), &dials)
	l, _ := NewLink(cfg)
	ea.sendN("a", 5)
	startLink(t, l)
	waitFor(t, "three attempts", func() bool { return dials.Load() >= 3 })
	st := l.Stats()
	if st.State != StateConnecting || !strings.Contains(st.Reason, "refused by peer: authentication failed: wrong secret") {
		t.Errorf("stats %+v, want connecting, refused for the wrong secret", st)
	}
	for _, e := range []*memEndpoint{ea, eb} {
		if out, taken, in := e.counts(); out != 5 || taken != 0 || in != 0 {
			t.Errorf("endpoint %d waiting, %d taken, %d received; want 5, 0, 0", out, taken, in)
		}
	}
}

// A peer that answers garbage is retried, not trusted, and not fatal.
func TestLinkGarbagePeer(t *testing.T) {
	checkLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
			c.Close()
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	var dials atomic.Int64
	ea := newMemEndpoint(1 << 20)
	cfg := fastLink(t, ea)
	cfg.Dial = tcpDial(ln.Addr().String(), &dials)
	l, _ := NewLink(cfg)
	ea.sendN("a", 5)
	startLink(t, l)
	waitFor(t, "three dials", func() bool { return dials.Load() >= 3 })
	st := l.Stats()
	if st.State != StateConnecting || !strings.Contains(st.Reason, "frame too large") && !strings.Contains(st.Reason, "handshake") {
		t.Errorf("stats %+v, want connecting with the garbage as reason", st)
	}
	if out, taken, _ := ea.counts(); out != 5 || taken != 0 {
		t.Errorf("%d waiting, %d taken", out, taken)
	}
}

// A link that dials its own session says so, and tries again: a peer
// claiming this session's ID may be a stranger that echoed it.
func TestLinkSelfConnect(t *testing.T) {
	checkLeaks(t)
	ea := newMemEndpoint(1 << 20)
	cfg := fastLink(t, ea)
	var l *Link
	var dials atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	cfg.Dial = func(ctx context.Context) (net.Conn, error) {
		dials.Add(1)
		c1, c2 := net.Pipe()
		wg.Go(func() { l.Session().Run(ctx, c2, Acceptor) })
		return c1, nil
	}
	l, _ = NewLink(cfg)
	startLink(t, l)
	waitFor(t, "three attempts", func() bool { return dials.Load() >= 3 })
	if st := l.Stats(); st.State != StateConnecting || !strings.Contains(st.Reason, ErrSelfConnect.Error()) {
		t.Errorf("stats %+v, want connecting, with %q", st, ErrSelfConnect)
	}
}

func TestLinkConfigErrors(t *testing.T) {
	ep := newMemEndpoint(1)
	dial := func(context.Context) (net.Conn, error) { return nil, errors.New("x") }
	tests := []struct {
		name string
		cfg  LinkConfig
		want string
	}{
		{"neither", LinkConfig{Endpoint: ep}, "exactly one"},
		{"both", LinkConfig{Endpoint: ep, Dial: dial, Rendezvous: &Rendezvous{Addr: "127.0.0.1:1"}}, "exactly one"},
		{"no endpoint", LinkConfig{Dial: dial}, "endpoint"},
		{"no port", LinkConfig{Endpoint: ep, Rendezvous: &Rendezvous{Addr: "127.0.0.1"}}, "missing port"},
		{"port 0", LinkConfig{Endpoint: ep, Rendezvous: &Rendezvous{Addr: "127.0.0.1:0"}}, "needs a port"},
		{"long name", LinkConfig{Endpoint: ep, Dial: dial, Config: Config{Name: strings.Repeat("n", 256)}}, "at most 255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewLink(tt.cfg)
			mustContain(t, err, tt.want)
		})
	}
}

// strangerAt listens on loopback and answers every connection with
// answer, run on the connection after the dialler's HELLO has been read;
// it returns the address and the HELLOs it read.
func strangerAt(t *testing.T, answer func(c net.Conn, hello []byte)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				fr := &frameReader{r: bufio.NewReader(c)}
				f, err := fr.next()
				if err != nil || f.typ != frameHello {
					return
				}
				answer(c, f.data)
				io.Copy(io.Discard, c) // until the dialler closes
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// A stranger at the dialled address that refuses with an ERROR, or that
// answers with the link's own session ID, does not stop a link with a
// secret for good: it retries with backoff, showing why, and meets its
// partner once the partner is there. The stranger's words cannot add
// lines to the status.
func TestLinkStrangerRefusalRetried(t *testing.T) {
	for _, kind := range []string{"ERROR", "own session ID", "ERROR with lines"} {
		t.Run(kind, func(t *testing.T) {
			checkLeaks(t)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			var answered atomic.Int64
			stranger := strangerAt(t, func(c net.Conn, body []byte) {
				answered.Add(1)
				switch kind {
				case "ERROR":
					c.Write(appendFrame(nil, frame{typ: frameError, data: []byte("go away")}))
				case "ERROR with lines":
					c.Write(appendFrame(nil, frame{typ: frameError, data: []byte("x\noutbox 0\nlink none")}))
				case "own session ID":
					h, err := parseHello(body)
					if err != nil {
						t.Errorf("the link's HELLO: %v", err)
						return
					}
					h.nonce[0]++ // a fresh nonce, the same ID
					c.Write(appendFrame(nil, frame{typ: frameChallenge, data: h.marshal()}))
				}
			})
			secret := []byte("s")
			eb := newMemEndpoint(1 << 20)
			cfgB := testConfig(t)
			cfgB.Secret = secret
			sb, _ := NewSession(cfgB, eb)
			t.Cleanup(func() { sb.Close() })
			partner := startAcceptor(t, ctx, sb)

			var target atomic.Value
			target.Store(stranger)
			ea := newMemEndpoint(1 << 20)
			cfg := fastLink(t, ea)
			cfg.Secret = secret
			cfg.Dial = func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", target.Load().(string))
			}
			l, _ := NewLink(cfg)
			startLink(t, l)
			waitFor(t, "three answers from the stranger", func() bool { return answered.Load() >= 3 })
			st := l.Stats()
			want := map[string]string{"ERROR": "refused by peer: go away", "own session ID": ErrSelfConnect.Error(),
				"ERROR with lines": `refused by peer: x\x0aoutbox 0\x0alink none`}[kind]
			if st.State != StateConnecting || !strings.Contains(st.Reason, want) || strings.ContainsAny(st.Reason, "\n\r") {
				t.Errorf("stats %+v; want connecting, with %q, on one line", st, want)
			}
			// The partner comes: the link meets it by itself.
			target.Store(partner.ln.Addr().String())
			ea.sendN("a", 3)
			eb.expectN(t, "a", 0, 3)
		})
	}
}

// TIMEOUT still fails a link, keeping the reason the attempts failed.
func TestLinkTimeoutKeepsLastError(t *testing.T) {
	checkLeaks(t)
	stranger := strangerAt(t, func(c net.Conn, _ []byte) {
		c.Write(appendFrame(nil, frame{typ: frameError, data: []byte("go away")}))
	})
	ea := newMemEndpoint(1 << 20)
	cfg := fastLink(t, ea)
	cfg.Dial = tcpDial(stranger, nil)
	cfg.Timeout = 200 * time.Millisecond
	l, _ := NewLink(cfg)
	startLink(t, l)
	st := waitState(t, l, StateFailed)
	if want := "no peer within timeout (200ms); last error: dialer handshake with " + stranger + ": refused by peer: go away"; st.Reason != want {
		t.Errorf("reason %q, want %q", st.Reason, want)
	}
}
