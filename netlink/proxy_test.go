package netlink

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cutProxy forwards TCP connections to target and cuts each one after a
// random number of bytes (both directions together), in the middle of
// whatever frame is passing. The cut points come from a seeded generator,
// so a failure can be replayed with the same seed (the interleaving of
// goroutines still varies).
type cutProxy struct {
	ln        net.Listener
	target    string
	maxBudget int
	rng       *rand.Rand
	rngMu     sync.Mutex
	cuts      atomic.Int64
	wg        sync.WaitGroup
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	closed    bool
}

func startCutProxy(t *testing.T, target string, seed uint64, maxBudget int) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, maxBudget: maxBudget, rng: rand.New(rand.NewPCG(seed, 0)), conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.acceptLoop)
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *cutProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *cutProxy) acceptLoop() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		if !p.track(in) || !p.track(out) {
			in.Close()
			out.Close()
			return
		}
		p.rngMu.Lock()
		budget := int64(1 + p.rng.IntN(p.maxBudget))
		p.rngMu.Unlock()
		var left atomic.Int64
		left.Store(budget)
		cut := func() {
			in.Close()
			out.Close()
		}
		pump := func(dst, src net.Conn) {
			buf := make([]byte, 16<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					remain := left.Add(-int64(n))
					if remain < 0 {
						// Forward only the bytes within budget, then cut.
						keep := max(int64(n)+remain, 0)
						dst.Write(buf[:keep])
						p.cuts.Add(1)
						cut()
						return
					}
					if _, err := dst.Write(buf[:n]); err != nil {
						cut()
						return
					}
				}
				if err != nil {
					cut()
					return
				}
			}
		}
		p.wg.Go(func() { pump(out, in) })
		p.wg.Go(func() { pump(in, out) })
	}
}

// streamMsg is message i of a stream: variable length, binary-safe
// (a NUL and a newline inside), so framing is tested too.
func streamMsg(prefix string, i int) []byte {
	return fmt.Appendf(nil, "%s %d\x00%s\n", prefix, i, strings.Repeat("x", i%97))
}

// consume receives n messages and checks each is the next of the stream.
func consume(e *memEndpoint, prefix string, n int) error {
	timeout := time.After(failAfter)
	for i := range n {
		var m []byte
		for m == nil {
			e.mu.Lock()
			if len(e.inbox) > 0 {
				m = e.inbox[0]
				e.inbox = e.inbox[1:]
				e.inBytes -= int64(cost(m))
			}
			e.mu.Unlock()
			if m == nil {
				select {
				case <-e.inWake:
				case <-timeout:
					return fmt.Errorf("%s: timed out after %d of %d messages", prefix, i, n)
				}
				continue
			}
			signal(e.roomWake)
		}
		if want := streamMsg(prefix, i); string(m) != string(want) {
			return fmt.Errorf("%s: message %d is %q, want %q", prefix, i, m, want)
		}
	}
	return nil
}

// The cut-link test, at the session layer: a proxy kills the TCP
// connection at random points while 20,000 messages flow each way, and
// every message arrives exactly once, in order.
func TestCutLink(t *testing.T) {
	for _, seed := range []uint64{42, 7, 1234} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { testCutLink(t, seed) })
	}
}

func testCutLink(t *testing.T, seed uint64) {
	checkLeaks(t)
	const n = 20000
	ts := startServer(t, func(c *ServerConfig) {
		c.Secret = []byte("cut")
		c.AckEvery = 64
		// Another process as far as relays go: through a proxy, this
		// process's own HELLO would be refused.
		c.hellos = newHelloRegistry()
	})
	// Small inboxes on both sides, so that credit runs out often.
	ts.capacity = 32 << 10
	proxy := startCutProxy(t, ts.addr, seed, 96<<10)
	l, ea := ts.client(t, "cut", func(c *LinkConfig) {
		c.Endpoint = newMemEndpoint(32 << 10)
		c.Secret = []byte("cut")
		c.Dial = tcpDial(proxy.addr(), nil)
		c.AckEvery = 64
	})
	for i := range n {
		ea.send(streamMsg("up", i))
	}
	eb := ts.endpoint(t, "cut")
	for i := range n {
		eb.send(streamMsg("down", i))
	}
	var wg sync.WaitGroup
	var errs [2]error
	wg.Go(func() { errs[0] = consume(eb, "up", n) })
	wg.Go(func() { errs[1] = consume(ea, "down", n) })
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "everything acknowledged", func() bool { return l.Stats().Outbox == 0 })
	st := l.Stats()
	t.Logf("%d cuts; client stats %+v", proxy.cuts.Load(), st)
	if proxy.cuts.Load() < 5 {
		t.Errorf("only %d cuts; the test did not test much", proxy.cuts.Load())
	}
	if st.Sent != n || st.Received != n {
		t.Errorf("client sent %d and received %d, want %d each", st.Sent, st.Received, n)
	}
	ea.checkNoOverflow(t)
	eb.checkNoOverflow(t)
	for _, e := range []*memEndpoint{ea, eb} {
		if _, _, in := e.counts(); in != 0 {
			t.Errorf("%d messages beyond the stream", in)
		}
	}
}
