package netlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// LinkConfig configures a Link. Exactly one of Dial and Rendezvous says
// how connections are made.
type LinkConfig struct {
	Config
	Endpoint Endpoint
	// Dial makes a dialling link: every connection is dialled, for
	// instance to a Server. Tests inject their own.
	Dial func(ctx context.Context) (net.Conn, error)
	// Rendezvous makes pIPC's network pipe: whichever side comes first
	// listens, the other dials.
	Rendezvous *Rendezvous
	// Timeout bounds how long the first connection may take, when Run
	// starts and after each Reconnect; zero waits for ever. When it runs
	// out the link is failed (ErrTimeout, with the reason the last attempt
	// failed, if any) until Reconnect, and nothing is lost: messages wait
	// in the endpoint. Later drops are redialled without limit.
	Timeout time.Duration
	// BackoffMin and BackoffMax bound the delay between attempts; zero
	// means DefaultBackoffMin and DefaultBackoffMax.
	BackoffMin, BackoffMax time.Duration
}

// Link owns a Session across connections: it connects, serves the
// connection, and when the connection drops connects again, with capped
// exponential backoff, so that the endpoint never notices except in
// Stats. An attempt that fails before the peer has authenticated — even
// with an ERROR that refuses us — is retried the same way: anybody can
// send an ERROR, so it must not stop a link for good. A Disconnect, a
// TIMEOUT, or a failure on a connection whose peer authenticated makes
// it wait for Reconnect.
type Link struct {
	cfg  LinkConfig
	sess *Session
	gate *byeGate // between sess and cfg.Endpoint
	log  *slog.Logger
	// strangers logs connections to a listening rendezvous that fail
	// their handshake, at a bounded rate.
	strangers *strangerLog

	closeCtx context.Context // ends at Close
	close    context.CancelFunc
	done     chan struct{} // closed when Run returns

	mu            sync.Mutex
	ran           bool
	state         State
	reason        string
	waiting       bool               // stay down until Reconnect
	downReason    string             // why, after Disconnect
	warned        string             // the refusal last logged as a warning
	cancelConnect context.CancelFunc // ends the connection attempt in progress
	reconnect     chan struct{}
}

// NewLink returns a link; Run starts it.
func NewLink(cfg LinkConfig) (*Link, error) {
	if (cfg.Dial == nil) == (cfg.Rendezvous == nil) {
		return nil, errors.New("netlink: a link needs exactly one of Dial and Rendezvous")
	}
	if cfg.Endpoint == nil {
		return nil, errors.New("netlink: a link needs an endpoint")
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Rendezvous != nil {
		r := *cfg.Rendezvous // filled in with defaults; the caller's stays as it was
		cfg.Rendezvous = &r
		if err := r.check(); err != nil {
			return nil, err
		}
		if cfg.TLS != nil && cfg.TLS.ServerName == "" {
			// A rendezvous may dial: check the partner's certificate
			// against the host it was told to meet.
			host, _, _ := net.SplitHostPort(cfg.Rendezvous.Addr)
			cfg.TLS = cfg.TLS.Clone()
			cfg.TLS.ServerName = host
		}
	}
	cfg.Config = cfg.Config.withDefaults()
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(DefaultBackoffMax, cfg.BackoffMin)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gate := newByeGate(cfg.Endpoint)
	return &Link{
		cfg: cfg, sess: newSession(cfg.Config, gate, newSessionID()), gate: gate,
		log: cfg.Logger, strangers: newStrangerLog(cfg.Logger),
		closeCtx: ctx, close: cancel, done: make(chan struct{}),
		state: StateDown, reconnect: make(chan struct{}, 1),
	}, nil
}

// Session returns the link's session.
func (l *Link) Session() *Session { return l.sess }

// Stats returns the link's status: its state and the session's counters.
func (l *Link) Stats() Stats {
	st := l.sess.Stats()
	l.mu.Lock()
	defer l.mu.Unlock()
	if st.State != StateClosed {
		st.State = l.state
	}
	st.Reason = l.reason
	return st
}

func (l *Link) setState(s State, reason error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiting && (s == StateConnecting || s == StateListening || s == StateUp) {
		// Told to stay down (Disconnect, or a failure): the attempt or
		// connection still in progress is ending and must not show as
		// live meanwhile.
		return
	}
	l.state, l.reason = s, ""
	if reason != nil {
		l.reason = CleanText(reason.Error())
	}
}

// park makes the link wait for Reconnect in state s.
func (l *Link) park(s State, reason error) {
	l.mu.Lock()
	l.waiting = true
	l.mu.Unlock()
	l.setState(s, reason)
}

// Run connects and serves connections until ctx ends or Close is called;
// it returns ctx's error, or ErrClosed. It may be called once.
func (l *Link) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.ran {
		l.mu.Unlock()
		return errors.New("netlink: Link.Run called twice")
	}
	l.ran = true
	l.mu.Unlock()
	defer close(l.done)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(l.closeCtx, func() { cancel(ErrClosed) })
	defer stop()

	bo := &backoff{min: l.cfg.BackoffMin, max: l.cfg.BackoffMax}
	timed := true // TIMEOUT applies to this attempt
	for {
		if err := l.waitForReconnect(ctx); err != nil {
			return l.end(ctx)
		}
		est, err := l.connect(ctx, bo, timed)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return l.end(ctx)
			case l.isWaiting() || errors.Is(err, ErrDisconnected):
				// Disconnect during the attempt: waitForReconnect shows it
				// (or a Reconnect came since, and the link tries again).
			default:
				l.log.Warn("link failed", "err", err)
				l.park(StateFailed, err)
			}
			timed = true
			continue
		}
		timed = false
		bo.reset()
		l.mu.Lock()
		l.warned = ""
		l.mu.Unlock()
		l.setState(StateUp, nil)
		l.gate.open()
		err = l.sess.serve(est)
		switch {
		case ctx.Err() != nil:
			return l.end(ctx)
		case errors.Is(err, ErrDisconnected):
			// Disconnect already made the link wait (waitForReconnect). A
			// Reconnect since — a write while the BYE was on its way —
			// has undone that, and the link connects again at once;
			// parking here would lose that Reconnect.
			timed = true
		case isFatal(err):
			l.log.Warn("link failed", "err", err)
			l.park(StateFailed, err)
			timed = true
		default:
			// A drop, or the peer's BYE: connect again (the peer will
			// accept when it wants).
			l.setState(StateConnecting, err)
			if sleep(ctx, bo.next()) != nil {
				return l.end(ctx)
			}
		}
	}
}

// end is Run's return: the link is down (or closed) for good.
func (l *Link) end(ctx context.Context) error {
	err := context.Cause(ctx)
	l.setState(StateDown, err)
	return err
}

func (l *Link) isWaiting() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting
}

// waitForReconnect blocks while the link waits for Reconnect.
func (l *Link) waitForReconnect(ctx context.Context) error {
	l.mu.Lock()
	if l.waiting && l.state != StateFailed && l.state != StateDown {
		// Disconnected between connections (during a backoff).
		l.state, l.reason = StateDown, l.downReason
	}
	l.mu.Unlock()
	for l.isWaiting() {
		select {
		case <-l.reconnect:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// connect makes one established connection: it dials or meets the
// partner, retrying until it succeeds, the link or its endpoint is
// closed, TIMEOUT (if timed), or Disconnect.
func (l *Link) connect(ctx context.Context, bo *backoff, timed bool) (*established, error) {
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if timed && l.cfg.Timeout > 0 {
		var cancelT context.CancelFunc
		cctx, cancelT = context.WithTimeoutCause(cctx, l.cfg.Timeout,
			fmt.Errorf("%w (%v)", ErrTimeout, l.cfg.Timeout))
		defer cancelT()
	}
	l.mu.Lock()
	if l.waiting {
		l.mu.Unlock()
		return nil, ErrDisconnected
	}
	l.cancelConnect = func() { cancel(ErrDisconnected) }
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.cancelConnect = nil
		l.mu.Unlock()
	}()
	var est *established
	var err error
	if l.cfg.Rendezvous != nil {
		est, err = l.meet(cctx, ctx, bo)
	} else {
		est, err = l.dialLoop(cctx, ctx, bo)
	}
	if err != nil && cctx.Err() != nil {
		err = context.Cause(cctx)
		if last := l.lastReason(); last != nil && errors.Is(err, ErrTimeout) {
			// Say why the attempts failed, if they did: a wrong secret
			// would otherwise hide behind the timeout.
			err = fmt.Errorf("%w; last error: %v", err, last)
		}
	}
	return est, err
}

// dialLoop dials until a handshake succeeds. Connections are served
// within runCtx, attempts made within ctx.
func (l *Link) dialLoop(ctx, runCtx context.Context, bo *backoff) (*established, error) {
	for {
		l.setState(StateConnecting, l.lastReason())
		conn, err := l.cfg.Dial(ctx)
		if err == nil {
			var est *established
			est, err = l.sess.establish(ctx, runCtx, conn, Dialer, false)
			if err == nil {
				return est, nil
			}
			if isLocal(err) {
				return nil, err
			}
		}
		if ended(ctx) {
			return nil, context.Cause(ctx)
		}
		l.attemptFailed("dial failed", err)
		if err := sleep(ctx, bo.next()); err != nil {
			return nil, err
		}
	}
}

func (l *Link) lastReason() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reason == "" {
		return nil
	}
	return errors.New(l.reason)
}

// ended reports whether ctx has ended, waiting for it if its deadline
// has passed: an attempt that failed just then may have failed for that
// reason alone (a dial reports "i/o timeout" a moment before the
// context's own timer fires), which is no reason to show.
func ended(ctx context.Context) bool {
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		<-ctx.Done()
	}
	return ctx.Err() != nil
}

// attemptFailed logs why an attempt to connect failed and shows it in the
// status while the link waits to try again. A refusal is a warning — it
// may need the user, as a wrong secret does — the first time it comes,
// not at every retry.
func (l *Link) attemptFailed(msg string, err error) {
	text := err.Error()
	l.mu.Lock()
	warn := isRefusal(err) && l.warned != text
	if warn {
		l.warned = text
	}
	l.mu.Unlock()
	if warn {
		l.log.Warn("link refused, retrying", "err", err)
	} else {
		l.log.Info(msg, "err", err)
	}
	l.setState(StateConnecting, err)
}

// isRefusal reports whether an attempt failed on the peer's say-so or on
// its proof, rather than on the network or garbage.
func isRefusal(err error) bool {
	for _, e := range []error{ErrRefused, ErrAuth, ErrVersion, ErrSelfConnect} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// isLocal reports whether an attempt to connect failed for a reason of
// this side's that retrying would not cure: the link or its endpoint is
// closed. Whatever else ends an attempt happens before the peer has
// authenticated — a refusal, a wrong proof, a peer that says it is this
// very session — and may be a stranger's doing, which must not stop the
// link: the attempt is retried.
func isLocal(err error) bool {
	return errors.Is(err, ErrClosed) || errors.Is(err, errEndpoint)
}

// isFatal reports whether err, ending a connection whose peer had
// authenticated, is one that retrying would not cure: the peer refused us
// or broke the session rules, the endpoint is gone, a message is too
// large, or state cannot be resumed.
func isFatal(err error) bool {
	for _, e := range []error{ErrAuth, ErrRefused, ErrVersion, ErrResume, ErrProtocol, ErrMessageTooLarge, ErrClosed, errEndpoint} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Disconnect ends the current connection on purpose — the peer receives
// "BYE text" — or the attempt to make one, and keeps the link down until
// Reconnect. It does not wait for the peer: the link is down (Stats) and
// a Reconnect from then on connects again when it returns; the connection
// itself ends in the background, once the peer has read the BYE (at most
// the handshake timeout later). The messages waiting to be sent when it is
// called — taken already, or still in the endpoint (byeGate) — go ahead
// of the BYE as far as the peer's credit allows, and the rest on the next
// connection; those written after it returns go after the BYE.
func (l *Link) Disconnect(text string) {
	l.mu.Lock()
	l.waiting = true
	l.downReason = ErrDisconnected.Error()
	if text != "" {
		l.downReason += ": " + CleanText(text)
	}
	if l.state != StateFailed {
		l.state, l.reason = StateDown, l.downReason
	}
	if l.cancelConnect != nil {
		l.cancelConnect()
	}
	l.mu.Unlock()
	drain := l.gate.close()
	l.sess.beginDisconnect(byeRequest{text: text, drain: drain})
}

// Reconnect lets a link that was disconnected, or failed, connect again
// with the same parameters (TIMEOUT applies again). It does nothing to a
// link that is connecting or up.
func (l *Link) Reconnect() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiting {
		l.waiting = false
		l.state, l.reason = StateConnecting, ""
		signal(l.reconnect)
	}
}

// Close stops the link for good and waits for Run to return. It returns
// the messages taken from the endpoint that the peer never acknowledged
// (see Session.Close, which also says how long it waits for the peer),
// oldest first.
func (l *Link) Close() [][]byte {
	l.sess.settle(min(settleWait, l.cfg.HandshakeTimeout))
	l.close()
	l.mu.Lock()
	ran := l.ran
	l.ran = true // a later Run does nothing
	l.mu.Unlock()
	if ran {
		<-l.done
	}
	return append(l.sess.Close(), l.gate.drain()...)
}
