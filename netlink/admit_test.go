package netlink

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stallingStranger connects to addr, sends a well-formed HELLO (no
// secret), and then says nothing more: the handshake waits for its AUTH.
func stallingStranger(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := &hello{version: protocolVersion, id: newSessionID(), maxMessage: 1024}
	if _, err := c.Write(appendFrame(nil, frame{typ: frameHello, data: h.marshal()})); err != nil {
		t.Fatal(err)
	}
	return c
}

// silentStrangers keeps n connections to addr open, saying nothing; each
// reconnects as soon as the other side closes it, until the test ends.
// It returns once each has connected.
func silentStrangers(t *testing.T, addr string, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var connected sync.WaitGroup
	connected.Add(n)
	for range n {
		wg.Go(func() {
			var d net.Dialer
			first := true
			for ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(time.Millisecond):
					}
					continue
				}
				if first {
					first = false
					connected.Done()
				}
				stop := context.AfterFunc(ctx, func() { c.Close() })
				io.Copy(io.Discard, c) // until closed
				stop()
				c.Close()
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	connected.Wait()
}

// closedByPeer waits until the other side closes c, and says how long
// that took.
func closedByPeer(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(failAfter))
	_, err := io.Copy(io.Discard, c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection not closed by the other side: %v", err)
	}
	return time.Since(start)
}

// upWithin waits for l to be up, failing the test if that takes longer
// than d.
func upWithin(t *testing.T, l *Link, d time.Duration) {
	t.Helper()
	start := time.Now()
	for l.Stats().State != StateUp {
		if time.Since(start) > d {
			t.Fatalf("link not up within %v: %+v", d, l.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// Strangers that hold every handshake slot of a listening rendezvous —
// some having sent a HELLO and stalled, others silent and reconnecting
// whenever closed — do not keep the partner out until the handshake
// timeout: the partner's connections close the oldest strangers'.
func TestRendezvousStrangersHoldingSlots(t *testing.T) {
	for _, kind := range []string{"stalled after HELLO", "silent, reconnecting"} {
		t.Run(kind, func(t *testing.T) {
			checkLeaks(t)
			addr := freeAddr(t)
			ea, eb := newMemEndpoint(1<<20), newMemEndpoint(1<<20)
			cfgA := fastLink(t, ea)
			cfgA.HandshakeTimeout = time.Minute
			cfgA.Rendezvous = &Rendezvous{Addr: addr, Window: time.Minute}
			a, err := NewLink(cfgA)
			if err != nil {
				t.Fatal(err)
			}
			startLink(t, a)
			waitState(t, a, StateListening)
			if kind == "stalled after HELLO" {
				for range 2 * maxRendezvousHandshakes {
					stallingStranger(t, addr)
				}
			} else {
				silentStrangers(t, addr, 2*maxRendezvousHandshakes)
			}
			b := rendezvousLink(t, addr, eb, time.Second)
			startLink(t, b)
			upWithin(t, a, 10*time.Second) // the strangers' handshakes would last a minute
			ea.sendN("a", 3)
			eb.expectN(t, "a", 0, 3)
		})
	}
}

// A connection that says nothing is closed after the HELLO timeout, long
// before the handshake timeout.
func TestServerSilentConnectionClosedEarly(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, func(c *ServerConfig) { c.HandshakeTimeout = time.Minute })
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if took := closedByPeer(t, c); took > DefaultHelloTimeout+2*time.Second {
		t.Errorf("silent connection closed after %v; want about the HELLO timeout, %v", took, DefaultHelloTimeout)
	}
}

// Strangers that stalled after HELLO in every slot of a server do not
// keep a real client out, whether it comes from their address or from
// another (127.0.0.2 is loopback too, and another source).
func TestServerStrangersHoldingSlots(t *testing.T) {
	for _, from := range []string{"127.0.0.1", "127.0.0.2"} {
		t.Run(from, func(t *testing.T) {
			checkLeaks(t)
			ts := startServer(t, func(c *ServerConfig) {
				c.MaxHandshakes = 4
				c.MaxHandshakesPerSource = 4
				c.HandshakeTimeout = time.Minute
			})
			for range 8 {
				stallingStranger(t, ts.addr)
			}
			l, ep := ts.client(t, "real", func(c *LinkConfig) {
				c.Dial = func(ctx context.Context) (net.Conn, error) {
					d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
					return d.DialContext(ctx, "tcp", ts.addr)
				}
			})
			upWithin(t, l, 10*time.Second) // the strangers' handshakes would last a minute
			ep.sendN("r", 3)
			ts.endpoint(t, "real").expectN(t, "r", 0, 3)
		})
	}
}

// fakeConn is a connection from a chosen address that records Close.
type fakeConn struct {
	net.Conn
	addr   *net.TCPAddr
	closed bool
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.addr }
func (c *fakeConn) Close() error         { c.closed = true; return nil }

// The admission's choices: which handshake is closed for a newcomer, or
// whether the newcomer is.
func TestAdmission(t *testing.T) {
	type arrival struct {
		ip     string
		after  time.Duration // since the previous arrival
		spoke  bool          // the peer has sent something since
		authed bool          // and proved the secret
	}
	tests := []struct {
		name      string
		max, per  int
		arrivals  []arrival
		wantGone  []int // arrivals closed, in order of arrival
		wantSlots int
	}{
		{"room", 4, 2, []arrival{{ip: "10.0.0.1"}, {ip: "10.0.0.2"}}, nil, 2},
		{"silent ones make room at once", 2, 2, []arrival{{ip: "10.0.0.1"}, {ip: "10.0.0.1"}, {ip: "10.0.0.1"}}, []int{0}, 2},
		{"one that spoke is safe for a while", 2, 2, []arrival{{ip: "10.0.0.1", spoke: true}, {ip: "10.0.0.1", spoke: true}, {ip: "10.0.0.1"}}, []int{2}, 2},
		{"then it makes room", 2, 2, []arrival{{ip: "10.0.0.1", spoke: true}, {ip: "10.0.0.1", spoke: true}, {ip: "10.0.0.1", after: evictAge}}, []int{0}, 2},
		{"authenticated ones are never closed", 2, 2, []arrival{{ip: "10.0.0.1", authed: true}, {ip: "10.0.0.1", authed: true}, {ip: "10.0.0.1", after: time.Hour}}, []int{2}, 2},
		{"a source at its share closes its own", 4, 2, []arrival{{ip: "10.0.0.2"}, {ip: "10.0.0.1"}, {ip: "10.0.0.1"}, {ip: "10.0.0.1"}}, []int{1}, 3},
		{"full: the busiest source gives way", 4, 3, []arrival{{ip: "10.0.0.2"}, {ip: "10.0.0.1"}, {ip: "10.0.0.1"}, {ip: "10.0.0.1"}, {ip: "10.0.0.3"}}, []int{1}, 4},
		{"an IPv6 /64 is one source", 4, 1, []arrival{{ip: "2001:db8::1"}, {ip: "2001:db8::2"}, {ip: "2001:db8:0:1::1"}}, []int{0}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			a := newAdmission(tt.max, tt.per, time.Hour, newStrangerLog(slog.New(slog.DiscardHandler)))
			a.now = func() time.Time { return now }
			var conns []*fakeConn
			var ps []*pendingHandshake
			for _, ar := range tt.arrivals {
				now = now.Add(ar.after)
				c := &fakeConn{addr: &net.TCPAddr{IP: net.ParseIP(ar.ip), Port: 1}}
				conns = append(conns, c)
				p := a.admit(c)
				ps = append(ps, p)
				if p == nil {
					continue
				}
				t.Cleanup(func() { p.hello.Stop() })
				if ar.spoke || ar.authed {
					p.spoke.Store(true)
				}
				if ar.authed {
					p.guard(handshakeSide{resolve: func(*hello) (uint64, error) { return 0, nil }}).resolve(nil)
				}
			}
			var gone []int
			for i, c := range conns {
				if c.closed {
					gone = append(gone, i)
				}
			}
			if !slices.Equal(gone, tt.wantGone) {
				t.Errorf("closed %v, want %v", gone, tt.wantGone)
			}
			if len(a.pending) != tt.wantSlots {
				t.Errorf("%d handshakes in progress, want %d", len(a.pending), tt.wantSlots)
			}
			for i, p := range ps {
				if (p == nil) != (i == len(ps)-1 && slices.Contains(tt.wantGone, i)) {
					t.Errorf("arrival %d admitted: %v", i, p != nil)
				}
			}
		})
	}
}

// A handshake closed to make room cannot go on to authenticate.
func TestAdmissionClosedCannotResolve(t *testing.T) {
	a := newAdmission(1, 1, time.Hour, newStrangerLog(slog.New(slog.DiscardHandler)))
	p := a.admit(&fakeConn{addr: &net.TCPAddr{IP: net.ParseIP("10.0.0.1")}})
	defer p.hello.Stop()
	q := a.admit(&fakeConn{addr: &net.TCPAddr{IP: net.ParseIP("10.0.0.1")}})
	defer q.hello.Stop()
	called := false
	side := p.guard(handshakeSide{resolve: func(*hello) (uint64, error) { called = true; return 0, nil }})
	if _, err := side.resolve(nil); !errors.Is(err, ErrBusy) || called {
		t.Errorf("resolve of a closed handshake: %v (called %v); want ErrBusy, not called", err, called)
	}
}
