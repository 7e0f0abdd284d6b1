package netlink

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A listening side — a Server, or a rendezvous waiting for its partner —
// runs a bounded number of handshakes at once, so strangers cannot make
// it hold unbounded state. The bound alone would let a few strangers that
// connect and stall keep the real peer out, so:
//
//   - a connection must deliver its HELLO (TLS included) within
//     Config.HelloTimeout, far shorter than the whole handshake's bound;
//   - one source address (an IPv6 /64) holds at most a share of the
//     slots, so a stranger on one address cannot take them all;
//   - when a newcomer finds no slot, the oldest handshake that may be
//     closed, from the source holding the most (or from the newcomer's
//     own source, if that is the one at its share), is closed to make
//     room. A handshake that has not authenticated may be closed while
//     its peer has sent nothing, and after evictAge once it has: a real
//     peer speaks at once (TLS, or HELLO) and finishes in a few round
//     trips. Only a newcomer that finds nothing to close is itself
//     closed at once.
//
// So a stranger's connection costs at most itself, and strangers that
// connect and say nothing cannot keep the real peer out, however often
// they come back.

// evictAge is how long a handshake whose peer has spoken is safe from
// being closed for a newcomer. Without it, strangers that reconnect as soon as
// they are closed would close each other in a chain that reaches the real
// peer's handshake before it completes.
const evictAge = 500 * time.Millisecond

// admission keeps track of a listener's handshakes in progress.
type admission struct {
	max, perSource int
	helloTimeout   time.Duration
	log            *strangerLog
	now            func() time.Time

	mu      sync.Mutex
	pending []*pendingHandshake // oldest first
}

func newAdmission(max, perSource int, helloTimeout time.Duration, log *strangerLog) *admission {
	return &admission{max: max, perSource: max1(min(perSource, max)), helloTimeout: helloTimeout, log: log, now: time.Now}
}

func max1(n int) int { return max(n, 1) }

// pendingHandshake is one admitted connection until its handshake ends.
type pendingHandshake struct {
	a      *admission
	conn   net.Conn
	source string
	since  time.Time
	hello  *time.Timer // closes conn if no HELLO came in time
	spoke  atomic.Bool // the peer has sent something
	// Guarded by a.mu:
	helloSeen bool // the peer's HELLO arrived
	authed    bool // the peer proved the secret (or, without one, completed its part)
	gone      bool // closed to make room, or done
}

// sourceOf is the address a connection counts against: its IP, or for
// IPv6 its /64, which one host is commonly given whole.
func sourceOf(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	if ip4 := ta.IP.To4(); ip4 != nil {
		return ip4.String()
	}
	return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// admit takes conn into a slot, closing an older stranger's handshake to
// make room if need be. It returns nil, having closed conn, when there is
// no room. The handshake must run on the returned handshake's conn.
func (a *admission) admit(conn net.Conn) *pendingHandshake {
	src := sourceOf(conn.RemoteAddr())
	now := a.now()
	a.mu.Lock()
	var victim *pendingHandshake
	full := false
	if a.count(src) >= a.perSource {
		full = true
		victim = a.oldestEvictable(src, now)
	} else if len(a.pending) >= a.max {
		full = true
		victim = a.oldestEvictable(a.busiestSource(now), now)
	}
	if full && victim == nil {
		a.mu.Unlock()
		a.log.info("too many handshakes in progress, dropping connection", "peer", conn.RemoteAddr())
		conn.Close()
		return nil
	}
	if victim != nil {
		a.removeLocked(victim)
	}
	p := &pendingHandshake{a: a, source: src, since: now}
	p.conn = &spokeConn{Conn: conn, p: p}
	a.pending = append(a.pending, p)
	p.hello = time.AfterFunc(a.helloTimeout, p.helloExpired)
	a.mu.Unlock()
	if victim != nil {
		a.log.info("too many handshakes in progress, closing the oldest", "peer", victim.conn.RemoteAddr(), "for", conn.RemoteAddr())
		victim.hello.Stop()
		victim.conn.Close()
	}
	return p
}

func (a *admission) count(src string) int {
	n := 0
	for _, p := range a.pending {
		if p.source == src {
			n++
		}
	}
	return n
}

// busiestSource is the source holding the most handshakes that could be
// closed now.
func (a *admission) busiestSource(now time.Time) string {
	counts := make(map[string]int)
	best, bestN := "", 0
	for _, p := range a.pending {
		if !p.evictable(now) {
			continue
		}
		counts[p.source]++
		if n := counts[p.source]; n > bestN {
			best, bestN = p.source, n
		}
	}
	return best
}

// oldestEvictable is the oldest handshake of src that may be closed now.
func (a *admission) oldestEvictable(src string, now time.Time) *pendingHandshake {
	for _, p := range a.pending {
		if p.source == src && p.evictable(now) {
			return p
		}
	}
	return nil
}

func (p *pendingHandshake) evictable(now time.Time) bool {
	return !p.authed && (!p.spoke.Load() || now.Sub(p.since) >= evictAge)
}

// spokeConn notes that the peer has sent something. It stays under the
// connection for its whole life, so it passes CloseWrite (BYE's
// half-close) through.
type spokeConn struct {
	net.Conn
	p *pendingHandshake
}

func (c *spokeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.p.spoke.Load() {
		c.p.spoke.Store(true)
	}
	return n, err
}

func (a *admission) removeLocked(p *pendingHandshake) {
	p.gone = true
	for i, q := range a.pending {
		if q == p {
			a.pending = append(a.pending[:i], a.pending[i+1:]...)
			return
		}
	}
}

func (p *pendingHandshake) helloExpired() {
	p.a.mu.Lock()
	expired := !p.helloSeen && !p.gone
	p.a.mu.Unlock()
	if expired {
		// The handshake fails on the closed connection, and reports it.
		p.conn.Close()
	}
}

// done frees the slot once the handshake has ended, either way.
func (p *pendingHandshake) done() {
	p.hello.Stop()
	p.a.mu.Lock()
	defer p.a.mu.Unlock()
	if !p.gone {
		p.a.removeLocked(p)
	}
}

// guard returns side with the admission's checkpoints added: the peer's
// HELLO stops the HELLO timer, and resolve — called once the peer has
// proved the secret — makes the handshake safe from being closed for a
// newcomer, unless it was closed already.
func (p *pendingHandshake) guard(side handshakeSide) handshakeSide {
	localID, resolve := side.localID, side.resolve
	side.localID = func(peer SessionID) SessionID {
		p.a.mu.Lock()
		p.helloSeen = true
		p.a.mu.Unlock()
		p.hello.Stop()
		return localID(peer)
	}
	side.resolve = func(peer *hello) (uint64, error) {
		p.a.mu.Lock()
		gone := p.gone
		p.authed = true
		p.a.mu.Unlock()
		if gone {
			return 0, fmt.Errorf("%w: closed to make room for a newer connection", ErrBusy)
		}
		return resolve(peer)
	}
	return side
}

func (c *spokeConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
