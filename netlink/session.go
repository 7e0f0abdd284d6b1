package netlink

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Session moves messages between a local Endpoint and one peer, exactly
// once and in order, across any number of connections made one after the
// other. It keeps the state that makes that possible — sequence numbers,
// the messages the peer has not acknowledged, the credit each side granted
// — while connections come and go; Run serves one connection.
type Session struct {
	cfg Config
	ep  Endpoint
	log *slog.Logger
	id  SessionID
	// tampered logs connections closed for a frame that failed its tag,
	// at a bounded rate.
	tampered *strangerLog

	// onClose, if set, is called once when the session is closed (a
	// Server forgets it).
	onClose func()

	mu     sync.Mutex
	closed bool
	cur    *runSlot // the connection being served, if any
	conn   *connRun // its running state, once the handshake is done
	// pendingBye is a Disconnect that came after the handshake took the
	// slot but before serving began.
	pendingBye *byeRequest
	// closing: Close has begun; no connection takes, sends or delivers
	// another message.
	closing atomic.Bool

	// The peer, once a handshake completed.
	peerID   SessionID
	hasPeer  bool
	peerAddr string
	peerName string // the pipe name a dialling peer asked for

	// Sending.
	out        outbox
	limit      uint64 // the peer's credit: send while the cumulative cost stays within it
	maxWritten uint64 // the highest sequence number ever written

	// Receiving.
	recvSeq uint64 // the last sequence number delivered
	recvOff uint64 // the cumulative cost delivered
	granted uint64 // the highest credit limit sent to the peer

	stats Stats
}

// BatchEndpoint is an Endpoint that can also move many messages per call.
// A session uses these methods when its endpoint has them, so that under
// load it takes a lock and a wake-up per batch of messages rather than
// per message, and hands a batch of lines received as one RUN frame to
// the endpoint in one piece; an endpoint without them works the same,
// one message per call.
type BatchEndpoint interface {
	Endpoint
	// NextRuns is Next for many messages: it waits for one as Next
	// does, then takes those already waiting behind it, without waiting:
	// at most count messages in all, and beyond the first only while
	// their cost (max(len, 1) each) stays within bytes. It appends them
	// as runs: runs[i] holds counts[i] messages, one message, or
	// (counts[i] ≥ 2) that many whole lines side by side, each ending
	// with its only '\n', such as the lines of one write. What it
	// returns has left the local outbox, as with Next; when ctx ends
	// before the first message it returns ctx's error and takes nothing.
	NextRuns(ctx context.Context, runs [][]byte, counts []int, count int, bytes int64) ([][]byte, []int, error)
	// DeliverRuns is Deliver for many messages, in order, given as runs:
	// runs[i] holds counts[i] messages, one message, or (counts[i] ≥ 2)
	// that many whole lines side by side, each ending with its only
	// '\n', as a RUN frame brings them. It returns how many messages it
	// queued: all of them, or with an error the ones before the first it
	// could not.
	DeliverRuns(runs [][]byte, counts []int) (int, error)
}

// runSlot is the right to serve a connection: a session serves one at a
// time. Cancelling ctx ends that connection; done is closed once it has
// fully ended.
type runSlot struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// NewSession returns a session for ep with a fresh session ID.
func NewSession(cfg Config, ep Endpoint) (*Session, error) {
	if ep == nil {
		return nil, errors.New("netlink: a session needs an endpoint")
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return newSession(cfg, ep, newSessionID()), nil
}

func newSession(cfg Config, ep Endpoint, id SessionID) *Session {
	return &Session{cfg: cfg, ep: ep, log: cfg.Logger, id: id, out: newOutbox(), tampered: newTamperLog(cfg.Logger)}
}

// ID returns the session's ID.
func (s *Session) ID() SessionID { return s.id }

// PeerName returns the pipe name the peer asked for in its HELLO (empty if
// none, or before the first handshake).
func (s *Session) PeerName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peerName
}

// Stats returns a snapshot of the session's status.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Peer = s.peerAddr
	st.Outbox = s.out.len()
	if s.closed {
		st.State = StateClosed
	} else if s.conn != nil {
		st.State = StateUp
	}
	return st
}

// Run serves one connection: it runs the handshake as role, resumes the
// session from where the peer says it is, and moves messages until the
// connection fails, the peer or Disconnect ends it, ctx ends, or the
// session is closed. It always closes conn. A Run started while another is
// serving takes over: the older one ends with ErrBusy.
func (s *Session) Run(ctx context.Context, conn net.Conn, role Role) error {
	est, err := s.establish(ctx, ctx, conn, role, true)
	if err != nil {
		return err
	}
	return s.serve(est)
}

// established is a connection whose handshake is done, holding the
// session's run slot: serve it, or abort it.
type established struct {
	slot *runSlot
	conn *deadlineConn
	res  *handshakeResult
}

// abort gives up an established connection without serving it.
func (s *Session) abort(est *established) {
	est.conn.Close()
	s.release(est.slot, nil)
}

// establish runs the handshake as role, bounded by hctx, and takes the run
// slot, whose connection then lives until runCtx ends. preempt says
// whether a connection being served gives way to this one (true) or this
// one is refused with ErrBusy (false).
func (s *Session) establish(hctx, runCtx context.Context, conn net.Conn, role Role, preempt bool) (*established, error) {
	var slot *runSlot
	side := handshakeSide{
		localID: func(SessionID) SessionID { return s.id },
		resolve: func(peer *hello) (uint64, error) {
			var err error
			slot, err = s.acquire(hctx, runCtx, preempt)
			if err != nil {
				return 0, err
			}
			return s.resumePoint(peer.id), nil
		},
	}
	c, res, err := handshake(hctx, conn, role, s.cfg, side)
	if err != nil {
		if slot != nil {
			s.release(slot, nil)
		}
		return nil, err
	}
	return &established{slot: slot, conn: c, res: res}, nil
}

// acquire waits, within ctx, for the right to serve a connection until
// parent ends. With preempt, the connection being served is ended;
// without, acquire fails with ErrBusy.
func (s *Session) acquire(ctx, parent context.Context, preempt bool) (*runSlot, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		cur := s.cur
		if cur == nil {
			slotCtx, cancel := context.WithCancelCause(parent)
			slot := &runSlot{ctx: slotCtx, cancel: cancel, done: make(chan struct{})}
			s.cur = slot
			s.mu.Unlock()
			return slot, nil
		}
		s.mu.Unlock()
		if !preempt {
			return nil, fmt.Errorf("%w: a connection is already up", ErrBusy)
		}
		s.log.Info("connection replaced by a newer one")
		cur.cancel(fmt.Errorf("%w: replaced by a newer connection", ErrBusy))
		select {
		case <-cur.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// release gives up the slot.
func (s *Session) release(slot *runSlot, err error) {
	s.mu.Lock()
	if s.cur == slot {
		s.cur = nil
	}
	s.conn = nil
	s.pendingBye = nil
	if err != nil {
		s.stats.Reason = err.Error()
	}
	s.mu.Unlock()
	slot.cancel(nil)
	close(slot.done)
}

// resumePoint is the last sequence number received from peer: 0 for a
// peer not seen before (or seen in an earlier life, with another ID).
func (s *Session) resumePoint(peer SessionID) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hasPeer && s.peerID == peer {
		return s.recvSeq
	}
	return 0
}

// byeRequest is a Disconnect: the BYE's text, and whether the endpoint
// (a byeGate) still lets through the messages that were waiting in it at
// the disconnect, which go ahead of the BYE.
type byeRequest struct {
	text  string
	drain bool
}

// Disconnect ends the current connection on purpose: the peer receives
// BYE with text (its endpoint gets the message "BYE text") after the
// messages the session holds unsent, as far as the peer's credit allows,
// and the connection closes after the peer has read it. (Behind a Link or
// Server, whose endpoints pass through a byeGate, the messages still
// waiting in the endpoint go before the BYE too.) It
// returns once the connection has ended, or ctx ends. Without a
// connection it does nothing. Nothing is lost: messages not acknowledged
// are resent on the next connection.
func (s *Session) Disconnect(ctx context.Context, text string) error {
	return s.disconnect(ctx, byeRequest{text: text})
}

func (s *Session) disconnect(ctx context.Context, bye byeRequest) error {
	bye.text = truncateText(bye.text, MaxByeText-len("BYE "))
	s.mu.Lock()
	c, slot := s.conn, s.cur
	if slot == nil {
		s.mu.Unlock()
		return nil
	}
	if c == nil {
		// Between handshake and serving: serving starts with the BYE.
		s.pendingBye = &bye
		s.mu.Unlock()
	} else {
		c.askByeLocked(bye)
		s.mu.Unlock()
		signal(c.pullWake)
		c.wakeWriter()
	}
	select {
	case <-slot.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// settleWait bounds how long Close waits for the peer to acknowledge the
// messages already sent to it (at most the handshake timeout).
const settleWait = time.Second

// Close ends the session for good: the current connection is cut and
// later Runs fail with ErrClosed. It returns the messages taken from the
// endpoint that the peer never acknowledged, oldest first. Before it cuts
// a connection that is up, it stops taking, sending and delivering
// messages, acknowledges every message it delivered, and waits a moment
// (settleWait) for the peer to acknowledge those it sent, so that what it
// returns is what the peer has not received — unless the peer's ACK is
// slower than that, or the connection breaks meanwhile: the peer may then
// have delivered some of them, and the caller decides (put them back, or
// count them as lost) rather than have them vanish silently.
func (s *Session) Close() [][]byte {
	s.settle(min(settleWait, s.cfg.HandshakeTimeout))
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cur := s.cur
	s.mu.Unlock()
	if cur != nil {
		cur.cancel(ErrClosed)
		<-cur.done
	}
	if s.onClose != nil {
		s.onClose()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.drain()
}

// settle makes the session stop taking, sending and delivering messages,
// for good, and waits, at most d, until the connection being served, if
// any, has flushed an ACK of everything delivered and the peer has
// acknowledged every message sent to it, or has ended.
func (s *Session) settle(d time.Duration) {
	s.closing.Store(true)
	s.mu.Lock()
	c, slot := s.conn, s.cur
	s.mu.Unlock()
	if c == nil || slot == nil {
		return
	}
	// No delivery after the one under way, if any: the final ACK
	// covers them all.
	c.deliverMu.Lock()
	c.deliverMu.Unlock()
	s.mu.Lock()
	c.settling, c.ackWanted = true, true
	c.checkSettledLocked()
	s.mu.Unlock()
	signal(c.pullWake)
	c.wakeWriter()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-c.settled:
	case <-slot.done:
	case <-timer.C:
	}
}

// handshake wraps conn in TLS if configured and runs the pipefs handshake
// as role, bounded by the handshake timeout and ctx. On success the
// returned conn is the one to serve; on failure conn is closed.
func handshake(ctx context.Context, conn net.Conn, role Role, cfg Config, side handshakeSide) (*deadlineConn, *handshakeResult, error) {
	side.secret, side.maxMessage, side.hellos = cfg.Secret, cfg.MaxMessage, cfg.hellos
	if side.hellos == nil {
		side.hellos = processHellos
	}
	if role == Dialer {
		side.name = cfg.Name
	}
	// A cancelled ctx closes the connection, which ends any read or
	// write in progress; stop reports whether that already happened.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*deadlineConn, *handshakeResult, error) {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("%s handshake with %v: %w", role, conn.RemoteAddr(), err)
	}
	conn.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	if cfg.TLS != nil {
		tc := tls.Server(conn, cfg.TLS)
		if role == Dialer {
			tc = tls.Client(conn, cfg.TLS)
		}
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(fmt.Errorf("TLS: %w", err))
		}
		conn = tc
	}
	dc := &deadlineConn{Conn: conn}
	hs := &handshaker{side: side, w: dc, fr: &frameReader{r: bufio.NewReaderSize(dc, bufSize)}, local: conn.LocalAddr(), remote: conn.RemoteAddr()}
	var res *handshakeResult
	var err error
	if role == Dialer {
		res, err = hs.dial()
	} else {
		res, err = hs.accept()
	}
	if err != nil {
		return fail(err)
	}
	if !stop() {
		return fail(ctx.Err())
	}
	conn.SetDeadline(time.Time{})
	res.fr = hs.fr
	return dc, res, nil
}

// begin makes the session ready to serve a connection whose handshake
// learned res. A peer with a new ID has lost (or never had) state with
// this side: numbering restarts and every message not acknowledged by the
// old peer is sent again. A known peer resumes where it says it is.
func (s *Session) begin(c *connRun, res *handshakeResult) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	peer := res.peer
	if !s.hasPeer || s.peerID != peer.id {
		if s.hasPeer {
			s.log.Warn("peer has a new session ID (restarted?): starting over; unacknowledged messages are sent again",
				"old", s.peerID, "new", peer.id, "unacked", s.out.len())
		}
		written := min(s.maxWritten-min(s.maxWritten, s.out.acked()), uint64(s.out.len()))
		s.out.renumber()
		s.maxWritten = written
		s.limit, s.recvSeq, s.recvOff, s.granted = 0, 0, 0, 0
		s.peerID, s.hasPeer = peer.id, true
	}
	if res.localSeq != s.recvSeq {
		// resolve read recvSeq under the same slot; nothing may move it.
		return fmt.Errorf("%w: sent resume point %d, now at %d", ErrResume, res.localSeq, s.recvSeq)
	}
	if res.peerRecvSeq < s.out.acked() || res.peerRecvSeq > s.out.last() {
		return fmt.Errorf("%w: peer has received up to %d, this side has sent %d to %d unacknowledged",
			ErrResume, res.peerRecvSeq, s.out.acked()+1, s.out.last())
	}
	s.out.ackTo(res.peerRecvSeq)
	c.writeNext = res.peerRecvSeq + 1
	c.ackSent, c.ackFlushed = s.recvSeq, s.recvSeq // the peer learned it from AUTH
	c.rSeq, c.rOff, c.granted = s.recvSeq, s.recvOff, s.granted
	s.peerName = peer.name
	s.peerAddr = c.conn.RemoteAddr().String()
	s.stats.MaxMessage = res.maxMessage
	s.stats.Connections++
	s.stats.Reason = ""
	s.conn = c
	if s.pendingBye != nil {
		c.askByeLocked(*s.pendingBye)
		s.pendingBye = nil
	}
	return nil
}
