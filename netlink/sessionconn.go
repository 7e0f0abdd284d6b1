package netlink

import (
	"bufio"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// bufSize is the size of each connection's read and write buffers: large
// enough that a burst of small messages is one syscall each way.
const bufSize = 64 << 10

// Batching. Under load every stage moves many messages per step: the
// puller takes up to maxPull messages from the endpoint before it wakes
// the writer, the writer writes up to maxBatch frames per hold of the
// session lock and flushes only when nothing more is ready, and the
// reader delivers up to maxDeliver messages that arrived together with
// one update of the session's state. The bounds keep each step short, so
// that the other goroutines are never held off for long.
const (
	maxPull    = 4096
	maxBatch   = 4096
	maxDeliver = 4096
)

// ackDelay is how long a receiver may hold back an ACK (or a small CREDIT
// to a peer that may be waiting for it) in the hope of covering more
// messages with it. Under load ACKs go out every Config.AckEvery messages
// and with every other frame; the delay only matters for a trickle of
// messages, each of which would otherwise cost a frame back, a write and
// a wake-up on both sides.
const ackDelay = 2 * time.Millisecond

// connRun is the state of one served connection. Fields marked (mu) are
// guarded by the session's mutex; fields marked (reader) belong to the
// reader goroutine.
type connRun struct {
	s      *Session
	conn   *deadlineConn
	fr     *frameReader
	bw     *bufio.Writer
	fw     frameWriter // encodes frames into bw, tagged on an authenticated connection
	maxMsg int

	// ctx ends the connection; cause records the first reason.
	ctx    context.Context
	cancel context.CancelCauseFunc

	wake     chan struct{} // the writer has something to do
	pullWake chan struct{} // credit or window may have opened for the puller
	// flush fires ackDelay after a delivery left an ACK, or a small
	// grant left a CREDIT, held back; the writer then sends it.
	flush *time.Timer

	writeNext  uint64 // (mu) the next sequence number to write
	ackSent    uint64 // (mu) the last ACK written
	ackWanted  bool   // (mu) the reader asks for an ACK now
	flushArmed bool   // (mu) flush is running
	pong       bool   // (mu) a PING is waiting for its PONG
	pongToken  uint64 // (mu)
	// A BYE: due once the writer has written what it can (bye), or
	// once the puller has taken what the endpoint held at the
	// disconnect (byeDrain, which then sets bye).
	bye, byeDrain bool   // (mu)
	byeText       string // (mu)

	creditSent bool // (mu) a CREDIT was written on this connection

	// Closing (Session.settle): deliverMu is held by the reader across
	// a delivery, so that once settle has taken it no delivery is under
	// way and none starts (the session is closing); settling is then
	// set, ackFlushed follows the ACKs the writer has flushed, and
	// settled is closed once the peer has acknowledged every message
	// written and this side has flushed an ACK of every one delivered.
	deliverMu  sync.Mutex
	settling   bool          // (mu)
	ackFlushed uint64        // (mu) while closing
	isSettled  bool          // (mu)
	settled    chan struct{} // closed once settled

	// wmu is held while writing to the connection: by the writer, or by
	// the puller writing what it just took.
	wmu            sync.Mutex
	batch          []pending // (wmu)
	wroteSinceTick bool      // (wmu) something was written since the last keepalive tick
	byeWritten     bool      // (wmu) BYE is written: nothing may follow it

	// The reader's view of what it has accepted: messages up to rSeq,
	// of cumulative cost rOff, have been checked and gathered in inbox
	// (or delivered); granted is the last credit limit it knows of.
	rSeq, rOff uint64   // (reader)
	granted    uint64   // (reader)
	inbox      [][]byte // (reader) runs of messages to deliver
	inboxN     []int    // (reader) the number of messages in each
	inboxMsgs  int      // (reader) their sum

	// peerRuns: the peer's FEATURES said it accepts RUN frames.
	peerRuns     atomic.Bool
	featuresSent bool // (wmu) this side's FEATURES was written
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (c *connRun) wakeWriter() { signal(c.wake) }

// armFlushLocked makes sure the writer looks again within ackDelay. The
// session's mutex must be held.
func (c *connRun) armFlushLocked() {
	if !c.flushArmed {
		c.flushArmed = true
		c.flush.Reset(ackDelay)
	}
}

// askByeLocked arranges a BYE. The session's mutex must be held.
func (c *connRun) askByeLocked(bye byeRequest) {
	c.byeText = bye.text
	if bye.drain && !c.bye {
		c.byeDrain = true
	} else {
		c.bye = true
	}
}

// checkSettledLocked closes settled once Close may cut the connection
// without leaving the peer in doubt: nothing more will be delivered, an
// ACK of everything delivered is on the wire, and the peer has
// acknowledged everything written to it. A BYE asked for before is let
// finish instead: the connection then ends by itself. The session's
// mutex must be held.
func (c *connRun) checkSettledLocked() {
	s := c.s
	if c.settling && !c.isSettled && !c.bye && !c.byeDrain &&
		c.ackFlushed == s.recvSeq && s.out.acked()+1 >= c.writeNext {
		c.isSettled = true
		close(c.settled)
	}
}

// fail ends the connection with err unless it is already ending.
func (c *connRun) fail(err error) { c.cancel(err) }

// serve moves messages over an established connection until it ends,
// then releases its slot.
func (s *Session) serve(est *established) (err error) {
	slot, conn, res := est.slot, est.conn, est.res
	ctx, cancel := context.WithCancelCause(slot.ctx)
	bw := bufio.NewWriterSize(conn, bufSize)
	c := &connRun{
		s: s, conn: conn, fr: res.fr, maxMsg: res.maxMessage,
		bw: bw, fw: frameWriter{w: bw, key: res.send},
		ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), pullWake: make(chan struct{}, 1), settled: make(chan struct{}),
		flush: time.NewTimer(time.Hour),
	}
	c.flush.Stop()
	// From here on every frame either way carries its tag (with a
	// secret): the ERROR below too.
	c.fr.key = res.recv
	defer func() {
		c.flush.Stop()
		cancel(err)
		conn.Close()
		s.release(slot, err)
	}()
	if err := s.begin(c, res); err != nil {
		// Tell the peer why, so it does not just retry in silence.
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		if c.fw.write(errorFrame(err)) == nil {
			bw.Flush()
		}
		return err
	}
	c.fr.maxData = c.maxMsg
	c.conn.idle = 3 * s.cfg.KeepAlive
	s.log.Info("link up", "peer", conn.RemoteAddr(), "session", s.id, "peer_session", res.peer.id,
		"resume_from", res.peerRecvSeq+1, "max_message", c.maxMsg)

	// Cutting the connection is what unblocks a read or write in progress.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	var wg sync.WaitGroup
	readerDone := make(chan struct{})
	wg.Go(func() {
		defer close(readerDone)
		c.fail(c.reader())
	})
	wg.Go(func() { c.fail(c.puller()) })
	werr := c.writer(readerDone)
	c.fail(werr)
	conn.Close()
	wg.Wait()

	// The first failure is the reason, except that the writer's own
	// decisions to end (Disconnect, a message it cannot send) are reported
	// as such even though the peer, told so, closed first.
	err = context.Cause(ctx)
	if errors.Is(werr, ErrDisconnected) || errors.Is(werr, ErrMessageTooLarge) {
		err = werr
	}
	if errors.Is(err, ErrIntegrity) {
		// Nothing of the frame was acted on; the connection is closed,
		// and a link connects again. It takes someone on the path (or a
		// broken one), which the user should hear of — once in a while.
		s.tampered.info("frame failed authentication: connection closed", "peer", conn.RemoteAddr(), "err", err)
	}
	s.log.Info("link down", "peer", conn.RemoteAddr(), "err", err)
	return err
}
