package netlink

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func rendezvousLink(t *testing.T, addr string, ep Endpoint, window time.Duration) *Link {
	t.Helper()
	cfg := fastLink(t, ep)
	cfg.Rendezvous = &Rendezvous{Addr: addr, Window: window}
	l, err := NewLink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Two sides on one host with one address meet whichever starts first, and
// meet again after the connection drops.
func TestRendezvousEitherOrder(t *testing.T) {
	for _, order := range []string{"a first", "b first", "together"} {
		t.Run(order, func(t *testing.T) {
			checkLeaks(t)
			addr := freeAddr(t)
			ea, eb := newMemEndpoint(1<<20), newMemEndpoint(1<<20)
			a := rendezvousLink(t, addr, ea, time.Second)
			b := rendezvousLink(t, addr, eb, time.Second)
			first, second := a, b
			if order == "b first" {
				first, second = b, a
			}
			startLink(t, first)
			if order != "together" {
				waitState(t, first, StateListening)
			}
			startLink(t, second)
			ea.sendN("a", 100)
			eb.sendN("b", 100)
			eb.expectN(t, "a", 0, 100)
			ea.expectN(t, "b", 0, 100)
			if st := first.Stats(); order != "together" && st.Connections != 1 {
				t.Errorf("first side: %+v", st)
			}
			// A drop: they meet again, nothing lost or repeated.
			waitState(t, a, StateUp)
			a.Session().mu.Lock()
			c := a.Session().conn
			a.Session().mu.Unlock()
			if c != nil {
				c.conn.Close()
			}
			ea.sendN("again", 100)
			eb.expectN(t, "again", 0, 100)
			waitFor(t, "a second connection", func() bool { return a.Stats().Connections >= 2 })
		})
	}
}

// TIMEOUT bounds how long the first side waits; then the link fails with
// the reason and keeps every message. Reconnect tries again.
func TestRendezvousTimeout(t *testing.T) {
	checkLeaks(t)
	addr := freeAddr(t)
	ea := newMemEndpoint(1 << 20)
	cfg := fastLink(t, ea)
	cfg.Rendezvous = &Rendezvous{Addr: addr, Window: 20 * time.Millisecond}
	cfg.Timeout = 100 * time.Millisecond
	a, err := NewLink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ea.sendN("a", 7)
	startLink(t, a)
	st := waitState(t, a, StateFailed)
	if !strings.Contains(st.Reason, "no peer within timeout (100ms)") {
		t.Errorf("reason %q, want the timeout", st.Reason)
	}
	if out, taken, _ := ea.counts(); out != 7 || taken != 0 {
		t.Errorf("%d waiting, %d taken; want 7, 0", out, taken)
	}
	// The port is free again: nothing listens after a failure.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still taken after the timeout: %v", err)
	}
	ln.Close()

	// Reconnect, and this time the partner comes.
	eb := newMemEndpoint(1 << 20)
	b := rendezvousLink(t, addr, eb, time.Second)
	a.Reconnect()
	startLink(t, b)
	eb.expectN(t, "a", 0, 7)
}

// Strangers at the listener do not stop the partner from getting in.
func TestRendezvousGarbageAtListener(t *testing.T) {
	checkLeaks(t)
	addr := freeAddr(t)
	ea, eb := newMemEndpoint(1<<20), newMemEndpoint(1<<20)
	a := rendezvousLink(t, addr, ea, 10*time.Second)
	startLink(t, a)
	waitState(t, a, StateListening)
	var strangers []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		strangers = append(strangers, c) // connects and says nothing
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("garbage garbage garbage"))
	b := rendezvousLink(t, addr, eb, time.Second)
	startLink(t, b)
	ea.sendN("a", 10)
	eb.expectN(t, "a", 0, 10)
	for _, s := range append(strangers, c) {
		s.Close()
	}
}

func TestListenAddr(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"127.0.0.1:7000", "127.0.0.1:7000"},
		{"localhost:7000", "localhost:7000"},
		{"[::1]:7000", "[::1]:7000"},
		{"10.0.0.2:7000", ":7000"},
		{"example.com:7000", ":7000"},
	}
	for _, tt := range tests {
		r := &Rendezvous{Addr: tt.addr}
		if err := r.check(); err != nil || r.ListenAddr != tt.want {
			t.Errorf("%s: listens on %q (%v), want %q", tt.addr, r.ListenAddr, err, tt.want)
		}
	}
}

// Disconnect while waiting for the partner stops listening at once and
// keeps the link down until Reconnect.
func TestRendezvousDisconnectWhileListening(t *testing.T) {
	checkLeaks(t)
	addr := freeAddr(t)
	ea := newMemEndpoint(1 << 20)
	a := rendezvousLink(t, addr, ea, 10*time.Second)
	startLink(t, a)
	waitState(t, a, StateListening)
	a.Disconnect("not now")
	st := waitState(t, a, StateDown)
	if !strings.Contains(st.Reason, "disconnected") {
		t.Errorf("reason %q", st.Reason)
	}
	// The listener closes in the background, at once.
	waitFor(t, "the listener to close", func() bool {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
		}
		return err == nil
	})
	a.Reconnect()
	waitState(t, a, StateListening)
	eb := newMemEndpoint(1 << 20)
	startLink(t, rendezvousLink(t, addr, eb, time.Second))
	ea.sendN("a", 3)
	eb.expectN(t, "a", 0, 3)
}

// A stranger at the rendezvous address that refuses every HELLO does not
// stop the link: it keeps trying, showing why.
func TestRendezvousStrangerRefusalRetried(t *testing.T) {
	checkLeaks(t)
	var answered atomic.Int64
	stranger := strangerAt(t, func(c net.Conn, _ []byte) {
		answered.Add(1)
		c.Write(appendFrame(nil, frame{typ: frameError, data: []byte("go away")}))
	})
	ea := newMemEndpoint(1 << 20)
	cfg := fastLink(t, ea)
	cfg.Secret = []byte("s")
	cfg.Rendezvous = &Rendezvous{Addr: stranger}
	l, err := NewLink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	startLink(t, l)
	waitFor(t, "three answers from the stranger", func() bool { return answered.Load() >= 3 })
	if st := l.Stats(); st.State != StateConnecting || !strings.Contains(st.Reason, "refused by peer: go away") {
		t.Errorf("stats %+v; want connecting, refused by the stranger", st)
	}
}
