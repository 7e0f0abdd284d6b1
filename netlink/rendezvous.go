package netlink

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// DefaultListenWindow is how long a rendezvous listens before it closes
// its listener and dials again (randomised up to twice as long).
const DefaultListenWindow = 2 * time.Second

// A listening rendezvous runs at most maxRendezvousHandshakes handshakes
// at once, and at most maxRendezvousHandshakesPerSource from one source
// address; a newcomer beyond them closes the oldest stranger's handshake
// (see admission), so strangers cannot crowd out the partner.
const (
	maxRendezvousHandshakes          = 4
	maxRendezvousHandshakesPerSource = 2
)

// Rendezvous is pIPC's network pipe, `link tcp HOST:PORT`: whichever of
// the two sides comes first listens on the port, the other connects.
//
// Each attempt dials Addr; if nobody answers, it listens on ListenAddr and
// accepts the partner. A listener is kept for a random window and then
// closed before dialling again: two sides on two hosts that started
// together would otherwise both listen for ever, and on one host a
// listener left open while dialling its own address is how a side meets
// itself. After a drop the same dance starts again. Should a side reach
// itself anyway, the handshake sees its own session ID (ErrSelfConnect)
// and it tries again.
type Rendezvous struct {
	// Addr is HOST:PORT, the same on both sides when on one host.
	Addr string
	// ListenAddr is where to listen when nobody answers: Addr itself when
	// HOST is a loopback address, ":PORT" (every interface) otherwise.
	ListenAddr string
	// Window is how long to listen before dialling again; zero means
	// DefaultListenWindow. Each window is randomised up to twice this.
	Window time.Duration
	// Dial and Listen default to TCP; tests inject their own.
	Dial   func(ctx context.Context, addr string) (net.Conn, error)
	Listen func(ctx context.Context, addr string) (net.Listener, error)
}

func (r *Rendezvous) check() error {
	host, port, err := net.SplitHostPort(r.Addr)
	if err != nil {
		return fmt.Errorf("netlink: rendezvous address %q: %w", r.Addr, err)
	}
	if port == "" || port == "0" {
		return fmt.Errorf("netlink: rendezvous address %q needs a port", r.Addr)
	}
	if r.ListenAddr == "" {
		r.ListenAddr = r.Addr
		if !isLoopbackHost(host) {
			r.ListenAddr = net.JoinHostPort("", port)
		}
	}
	if r.Window <= 0 {
		r.Window = DefaultListenWindow
	}
	if r.Dial == nil {
		r.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	if r.Listen == nil {
		r.Listen = func(ctx context.Context, addr string) (net.Listener, error) {
			var lc net.ListenConfig
			return lc.Listen(ctx, "tcp", addr)
		}
	}
	return nil
}

// meet makes one connection with the partner: dial, or listen for a
// window and accept, until one handshake succeeds or ctx ends.
func (l *Link) meet(ctx, runCtx context.Context, bo *backoff) (*established, error) {
	r := l.cfg.Rendezvous
	for {
		l.setState(StateConnecting, l.lastReason())
		conn, err := r.Dial(ctx, r.Addr)
		if err == nil {
			est, err := l.sess.establish(ctx, runCtx, conn, Dialer, false)
			if err == nil {
				return est, nil
			}
			if isLocal(err) {
				return nil, err
			}
			if ended(ctx) {
				return nil, context.Cause(ctx)
			}
			// Something answered that is not our partner, refused us
			// before proving it holds the secret, or is ourselves: try
			// again after a pause.
			l.attemptFailed("rendezvous: dialled but no partner", err)
			if err := sleep(ctx, bo.next()); err != nil {
				return nil, err
			}
			continue
		}
		if ended(ctx) {
			return nil, context.Cause(ctx)
		}
		// Nobody there: be the one who waits.
		ln, err := r.Listen(ctx, r.ListenAddr)
		if err != nil {
			// Usually the partner bound the port between our dial and our
			// listen (one host): it will answer the next dial.
			l.log.Info("rendezvous: cannot listen", "addr", r.ListenAddr, "err", err)
			l.setState(StateConnecting, fmt.Errorf("listening on %s: %w", r.ListenAddr, err))
			if err := sleep(ctx, bo.next()); err != nil {
				return nil, err
			}
			continue
		}
		l.setState(StateListening, nil)
		window := r.Window + rand.N(r.Window)
		if est := l.acceptOne(ctx, runCtx, ln, window); est != nil {
			return est, nil
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
	}
}

// acceptOne accepts on ln for window and returns the first connection
// whose handshake succeeds, or nil. ln is closed when it returns. Peers
// that fail the handshake cost only their own connection.
func (l *Link) acceptOne(ctx, runCtx context.Context, ln net.Listener, window time.Duration) *established {
	wctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	stop := context.AfterFunc(wctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		winner *established
	)
	adm := newAdmission(maxRendezvousHandshakes, maxRendezvousHandshakesPerSource, l.cfg.HelloTimeout, l.strangers)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if wctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				l.log.Info("rendezvous: accept failed", "err", err)
			}
			break
		}
		p := adm.admit(conn)
		if p == nil {
			continue
		}
		wg.Go(func() {
			est, err := l.accepted(wctx, runCtx, p)
			if err != nil {
				l.strangers.info("rendezvous: handshake failed", "peer", p.conn.RemoteAddr(), "err", err)
				return
			}
			// The first handshake to succeed holds the session's run
			// slot, so every later one fails in resolve: there is no
			// second winner.
			mu.Lock()
			winner = est
			mu.Unlock()
			cancel() // stop listening and end the other handshakes
		})
	}
	wg.Wait()
	return winner
}

// accepted runs the acceptor's handshake on an admitted connection, as
// Session.establish does, with the admission's checkpoints. It does not
// preempt: while one handshake holds the session, any other is refused.
func (l *Link) accepted(hctx, runCtx context.Context, p *pendingHandshake) (*established, error) {
	s := l.sess
	var slot *runSlot
	side := p.guard(handshakeSide{
		localID: func(SessionID) SessionID { return s.id },
		resolve: func(peer *hello) (uint64, error) {
			var err error
			if slot, err = s.acquire(hctx, runCtx, false); err != nil {
				return 0, err
			}
			return s.resumePoint(peer.id), nil
		},
	})
	c, res, err := handshake(hctx, p.conn, Acceptor, s.cfg, side)
	p.done()
	if err != nil {
		if slot != nil {
			s.release(slot, nil)
		}
		return nil, err
	}
	return &established{slot: slot, conn: c, res: res}, nil
}

// isLoopbackHost reports whether host names this machine's loopback.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
