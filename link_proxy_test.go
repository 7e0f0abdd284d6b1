package pipefs_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpProxy comes between two daemons: it forwards every connection made to
// its own loopback port to a target, byte for byte, passing half-closes
// on. A test can freeze it (nothing is forwarded either way and nothing is
// closed: the peer looks alive but unresponsive), thaw it, cut every
// connection, or have it cut each connection at a random point (cutAt).
type tcpProxy struct {
	ln     net.Listener
	target string
	// cutAt, if set, is asked once per connection for the point at which
	// to cut it.
	cutAt func() cutPoint

	mu     sync.Mutex
	pairs  map[*proxyPair]struct{}
	frozen chan struct{} // non-nil while frozen; thaw closes it
	closed bool

	accepted atomic.Int64 // connections forwarded
	cuts     atomic.Int64 // connections cut at their cutPoint
	wg       sync.WaitGroup
}

// cutPoint is where a connection is cut: after bytes bytes (both
// directions together) have been forwarded, or after the duration,
// whichever comes first; zero fields never cut. reset closes with a TCP
// reset rather than a FIN.
type cutPoint struct {
	bytes int64
	after time.Duration
	reset bool
}

// proxyPair is one forwarded connection: a from the client, b to the target.
type proxyPair struct {
	a, b     net.Conn
	left     atomic.Int64 // bytes still allowed; only used with a byte budget
	budgeted bool
	reset    bool
	once     sync.Once
	done     chan struct{} // closed when the pair is closed
	halves   atomic.Int32  // directions that ended with a clean EOF
}

// close closes both sockets, once; it reports whether this call did.
func (pp *proxyPair) close() bool {
	did := false
	pp.once.Do(func() {
		did = true
		if pp.reset {
			for _, c := range []net.Conn{pp.a, pp.b} {
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
			}
		}
		pp.a.Close()
		pp.b.Close()
		close(pp.done)
	})
	return did
}

func startProxy(t *testing.T, target string, cutAt func() cutPoint) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, cutAt: cutAt, pairs: map[*proxyPair]struct{}{}}
	p.wg.Go(p.acceptLoop)
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) acceptLoop() {
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			// The target is not there (yet): the client sees a drop.
			a.Close()
			continue
		}
		pp := &proxyPair{a: a, b: b, done: make(chan struct{})}
		var timer *time.Timer
		if p.cutAt != nil {
			cp := p.cutAt()
			pp.reset = cp.reset
			if cp.bytes > 0 {
				pp.budgeted = true
				pp.left.Store(cp.bytes)
			}
			if cp.after > 0 {
				timer = time.AfterFunc(cp.after, func() {
					if pp.close() {
						p.cuts.Add(1)
					}
				})
			}
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			pp.close()
			return
		}
		p.pairs[pp] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() {
			<-pp.done
			if timer != nil {
				timer.Stop()
			}
			p.mu.Lock()
			delete(p.pairs, pp)
			p.mu.Unlock()
		})
		p.accepted.Add(1)
		p.wg.Go(func() { p.pump(pp, pp.b, pp.a) })
		p.wg.Go(func() { p.pump(pp, pp.a, pp.b) })
	}
}

// pump forwards src to dst until either ends or the pair is cut.
func (p *tcpProxy) pump(pp *proxyPair, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitThawed(pp) {
				return
			}
			chunk, cut := buf[:n], false
			if pp.budgeted {
				if left := pp.left.Add(-int64(n)); left < 0 {
					chunk, cut = buf[:max(int64(n)+left, 0)], true
				}
			}
			if len(chunk) > 0 {
				if _, err := dst.Write(chunk); err != nil {
					pp.close()
					return
				}
			}
			if cut {
				if pp.close() {
					p.cuts.Add(1)
				}
				return
			}
		}
		if err != nil {
			// A clean end of one direction is passed on as a half-close,
			// so that a BYE followed by FIN arrives as it was sent; the
			// pair is closed when both directions have ended.
			if tc, ok := dst.(*net.TCPConn); ok && pp.halves.Add(1) < 2 && tc.CloseWrite() == nil {
				return
			}
			pp.close()
			return
		}
	}
}

// waitThawed waits while the proxy is frozen; false if the pair was closed
// meanwhile.
func (p *tcpProxy) waitThawed(pp *proxyPair) bool {
	p.mu.Lock()
	ch := p.frozen
	p.mu.Unlock()
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	case <-pp.done:
		return false
	}
}

// freeze stops forwarding without closing anything.
func (p *tcpProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen == nil {
		p.frozen = make(chan struct{})
	}
}

func (p *tcpProxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen != nil {
		close(p.frozen)
		p.frozen = nil
	}
}

// cutAll closes every connection now (new ones are still accepted).
func (p *tcpProxy) cutAll() {
	p.mu.Lock()
	pairs := make([]*proxyPair, 0, len(p.pairs))
	for pp := range p.pairs {
		pairs = append(pairs, pp)
	}
	p.mu.Unlock()
	for _, pp := range pairs {
		pp.close()
	}
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.thaw()
	p.cutAll()
	p.wg.Wait()
}
