package netlink

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

// Lingering. A stream of single messages, each written on its own, would
// otherwise cost a wake-up of the sender and a frame and a wake-up of the
// receiver per message. When lingerAfter batches in a row each held fewer
// than lingerBelow messages and came less than lingerGap after the one
// before, the puller waits linger before taking the next, and takes
// whatever came meanwhile in one batch. A lone message (a request, a
// ping-pong) goes out at once.
const (
	linger      = 250 * time.Microsecond
	lingerGap   = 250 * time.Microsecond
	lingerAfter = 3
	lingerBelow = 64
)

// tryCtx is a context that has already ended: Endpoint.Next with it takes
// a message only if one is waiting, and otherwise returns at once.
var tryCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// deadlineConn pushes the connection's deadline forward before reads and
// writes, so that a peer that goes silent (or stops reading) for idle is
// given up rather than waited on forever. Zero idle sets no deadline.
// Moving a deadline costs a timer update, so it is moved only once less
// than idle is left, to idle and a sixteenth ahead: a silent peer is given
// up after idle to idle + idle/16. Reads are made by one goroutine at a
// time, and so are writes.
type deadlineConn struct {
	net.Conn
	idle            time.Duration
	readBy, writeBy time.Time // the deadlines set
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	if d.idle > 0 {
		if now := time.Now(); d.readBy.Sub(now) < d.idle {
			d.readBy = now.Add(d.idle + d.idle/16)
			d.Conn.SetReadDeadline(d.readBy)
		}
	}
	return d.Conn.Read(p)
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if d.idle > 0 {
		if now := time.Now(); d.writeBy.Sub(now) < d.idle {
			d.writeBy = now.Add(d.idle + d.idle/16)
			d.Conn.SetWriteDeadline(d.writeBy)
		}
	}
	return d.Conn.Write(p)
}

// connRun is the state of one served connection. Fields marked (mu) are
// guarded by the session's mutex; fields marked (reader) belong to the
// reader goroutine.
type connRun struct {
	s      *Session
	conn   *deadlineConn
	fr     *frameReader
	bw     *bufio.Writer
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
	bye        bool   // (mu) Disconnect asked for a BYE
	byeText    string // (mu)

	creditSent bool // (mu) a CREDIT was written on this connection

	// wmu is held while writing to the connection: by the writer, or by
	// the puller writing what it just took.
	wmu            sync.Mutex
	batch          []pending // (wmu)
	wroteSinceTick bool      // (wmu) something was written since the last keepalive tick

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

// fail ends the connection with err unless it is already ending.
func (c *connRun) fail(err error) { c.cancel(err) }

// serve moves messages over an established connection until it ends,
// then releases its slot.
func (s *Session) serve(est *established) (err error) {
	slot, conn, res := est.slot, est.conn, est.res
	ctx, cancel := context.WithCancelCause(slot.ctx)
	c := &connRun{
		s: s, conn: conn, fr: res.fr, maxMsg: res.maxMessage,
		bw:  bufio.NewWriterSize(conn, bufSize),
		ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), pullWake: make(chan struct{}, 1),
		flush: time.NewTimer(time.Hour),
	}
	c.flush.Stop()
	defer func() {
		c.flush.Stop()
		cancel(err)
		conn.Close()
		s.release(slot, err)
	}()
	if err := s.begin(c, res); err != nil {
		// Tell the peer why, so it does not just retry in silence.
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		conn.Write(errorFrame(err))
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
	s.log.Info("link down", "peer", conn.RemoteAddr(), "err", err)
	return err
}

// reader handles every frame that arrives. DATA frames that arrive
// together are checked one by one and delivered together, when the
// reader has handled everything buffered and would wait for the network
// (or has gathered maxDeliver of them); whatever ends the connection,
// the messages already checked are delivered first.
func (c *connRun) reader() error {
	err := c.readFrames()
	if derr := c.deliver(); err == nil {
		err = derr
	}
	return err
}

func (c *connRun) readFrames() error {
	s := c.s
	var run []frame
	for {
		if !c.fr.buffered() {
			if err := c.deliver(); err != nil {
				return err
			}
		}
		// Under load the buffer holds a run of DATA frames: take them
		// in one pass.
		if run = c.fr.dataRun(run[:0], maxDeliver-c.inboxMsgs); len(run) > 0 {
			for _, f := range run {
				if err := c.gather(f); err != nil {
					return err
				}
			}
			clear(run)
			continue
		}
		f, err := c.fr.next()
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("reading: connection closed by peer")
			}
			return fmt.Errorf("reading: %w", err)
		}
		switch f.typ {
		case frameData:
			if err := c.gather(f); err != nil {
				return err
			}
		case frameAck:
			s.mu.Lock()
			if f.value >= c.writeNext {
				s.mu.Unlock()
				return fmt.Errorf("%w: ACK %d for a message not sent (next is %d)", ErrProtocol, f.value, c.writeNext)
			}
			s.out.ackTo(f.value)
			s.mu.Unlock()
			signal(c.pullWake)
		case frameCredit:
			s.mu.Lock()
			grew := f.value > s.limit
			s.limit = max(s.limit, f.value)
			s.mu.Unlock()
			if grew {
				signal(c.pullWake)
				c.wakeWriter()
			}
		case framePing:
			s.mu.Lock()
			c.pong, c.pongToken = true, f.value
			s.mu.Unlock()
			c.wakeWriter()
		case framePong:
		case frameFeatures:
			c.peerRuns.Store(f.value&featureRuns != 0)
		case frameRun:
			if err := c.gatherRun(f); err != nil {
				return err
			}
		case frameBye:
			// After every DATA that came before it.
			if err := c.deliver(); err != nil {
				return err
			}
			text := string(f.data)
			// A line, like every message of a lines-mode pipe, so that
			// `read -r line < out` and `head -n 1 out` see it.
			msg := "BYE"
			if text != "" {
				msg += " " + text
			}
			msg += "\n"
			if err := s.ep.Deliver([]byte(msg)); err != nil {
				return fmt.Errorf("%w: delivering BYE: %w", errEndpoint, err)
			}
			return &ByeError{Text: text}
		case frameError:
			return fmt.Errorf("%w: %s", ErrRefused, f.data)
		default:
			if f.typ < frameExtension {
				return fmt.Errorf("%w: unexpected %s frame", ErrProtocol, f.typ)
			}
		}
	}
}

// gather checks one DATA frame and adds its message to those to deliver,
// discarding a duplicate.
func (c *connRun) gather(f frame) error {
	switch {
	case f.value <= c.rSeq:
		return nil // already delivered
	case f.value != c.rSeq+1:
		return fmt.Errorf("%w: DATA %d after %d", ErrProtocol, f.value, c.rSeq)
	}
	return c.accept(f.data, 1, cost(f.data))
}

// gatherRun checks one RUN frame — n lines, as n DATA frames would bring
// them — and adds them to those to deliver, without the ones already
// delivered.
func (c *connRun) gatherRun(f frame) error {
	b, n := f.data, uint64(f.n)
	if n == 0 || len(b) == 0 || b[len(b)-1] != '\n' || bytes.Count(b, newline) != f.n {
		return fmt.Errorf("%w: RUN %d does not hold %d whole lines", ErrProtocol, f.value, f.n)
	}
	switch {
	case f.value > c.rSeq+1:
		return fmt.Errorf("%w: RUN %d after %d", ErrProtocol, f.value, c.rSeq)
	case f.value+n-1 <= c.rSeq:
		return nil // already delivered
	}
	for ; f.value <= c.rSeq; f.value, n = f.value+1, n-1 {
		b = b[bytes.IndexByte(b, '\n')+1:] // delivered before
	}
	// Lines are at least one byte each: the run costs its length.
	return c.accept(b, int(n), uint64(len(b)))
}

var newline = []byte{'\n'}

// accept adds n checked messages in b, costing cost, to those to deliver
// once it has checked them against the credit granted.
func (c *connRun) accept(b []byte, n int, cost uint64) error {
	if c.rOff+cost > c.granted {
		// The writer may have granted more since the reader last looked.
		c.s.mu.Lock()
		c.granted = c.s.granted
		c.s.mu.Unlock()
		if c.rOff+cost > c.granted {
			return fmt.Errorf("%w: message %d, %d bytes, beyond credit (%d of %d used)",
				ErrProtocol, c.rSeq+1, len(b), c.rOff, c.granted)
		}
	}
	c.inbox = append(c.inbox, b)
	c.inboxN = append(c.inboxN, n)
	c.inboxMsgs += n
	c.rSeq, c.rOff = c.rSeq+uint64(n), c.rOff+cost
	if c.inboxMsgs >= maxDeliver {
		return c.deliver()
	}
	return nil
}

// deliver hands the gathered messages to the endpoint and records them as
// delivered; an ACK follows at once after AckEvery messages, and
// otherwise within ackDelay (or with the next frame the writer sends).
func (c *connRun) deliver() error {
	if len(c.inbox) == 0 {
		return nil
	}
	s := c.s
	var n int
	var err error
	if be, ok := s.ep.(BatchEndpoint); ok {
		n, err = be.DeliverRuns(c.inbox, c.inboxN)
	} else {
		n, err = deliverEach(s.ep, c.inbox, c.inboxN)
	}
	if err != nil {
		err = fmt.Errorf("%w: delivering: %w", errEndpoint, err)
	}
	off := runsCost(c.inbox, c.inboxN, n)
	clear(c.inbox) // the endpoint has them now
	c.inbox, c.inboxN, c.inboxMsgs = c.inbox[:0], c.inboxN[:0], 0
	if n == 0 {
		return err
	}
	// Deliver comes before recvOff grows: the writer reads recvOff before
	// Room, so it may under-count credit but never over-count it.
	s.mu.Lock()
	s.recvSeq += uint64(n)
	s.recvOff += off
	s.stats.Received += uint64(n)
	c.granted = s.granted
	wake := false
	if s.recvSeq-c.ackSent >= uint64(s.cfg.AckEvery) {
		wake = !c.ackWanted
		c.ackWanted = true
	} else {
		c.armFlushLocked()
	}
	if s.granted-s.recvOff < uint64(c.maxMsg) {
		// The peer may soon wait for credit: the writer must watch the
		// room from now on.
		wake = true
	}
	s.mu.Unlock()
	if wake {
		c.wakeWriter()
	}
	return err
}

// deliverEach delivers runs one message at a time, returning how many it
// delivered.
func deliverEach(ep Endpoint, runs [][]byte, counts []int) (int, error) {
	n := 0
	for i, b := range runs {
		for k := 0; k < counts[i]; k++ {
			m := b
			if counts[i] > 1 {
				m = b[:bytes.IndexByte(b, '\n')+1]
				b = b[len(m):]
			}
			if err := ep.Deliver(m); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// runsCost is the cost of the first n messages of runs.
func runsCost(runs [][]byte, counts []int, n int) uint64 {
	var off uint64
	for i, b := range runs {
		switch {
		case n == 0:
			return off
		case counts[i] == 1:
			off += cost(b)
			n--
		case n >= counts[i]:
			off += uint64(len(b))
			n -= counts[i]
		default:
			for ; n > 0; n-- {
				off += uint64(bytes.IndexByte(b, '\n') + 1)
				b = b[bytes.IndexByte(b, '\n')+1:]
			}
		}
	}
	return off
}

// puller takes messages from the endpoint while the peer's credit and the
// unacknowledged window allow, so that when the peer is full the messages
// wait in the local outbox, where writers see a full pipe. It waits for
// one message, then takes what else is waiting without waiting, and hands
// them to the writer together.
func (c *connRun) puller() error {
	s := c.s
	var runs [][]byte
	var counts []int
	var last time.Time // when the last batch was taken
	streak := 0        // small batches in a row, each soon after the last
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		s.mu.Lock()
		window := s.cfg.MaxUnacked - s.out.len()
		end, limit := s.out.lastEnd(), s.limit
		// Keep only about a batch ahead of the writer: messages wait
		// better in the endpoint, where local writers see them.
		unsent := s.out.last() + 1 - c.writeNext
		can := !c.bye && window > 0 && end < limit && unsent < maxPull
		s.mu.Unlock()
		if !can {
			streak = 0
			select {
			case <-c.pullWake:
				continue
			case <-c.ctx.Done():
				return nil
			}
		}
		ctx := c.ctx
		if streak >= lingerAfter {
			// A stream of small batches: let it gather for a moment,
			// then take what came without waiting.
			timer.Reset(linger)
			select {
			case <-timer.C:
			case <-c.ctx.Done():
				return nil
			}
			s.mu.Lock()
			bye := c.bye
			s.mu.Unlock()
			if bye {
				continue // a disconnect came meanwhile: take nothing more
			}
			ctx = tryCtx
		}
		var err error
		runs, counts, err = c.take(ctx, runs, counts, min(window, maxPull), end, limit)
		if errors.Is(err, context.Canceled) && ctx == tryCtx && c.ctx.Err() == nil {
			err = nil // nothing came: the stream has paused
		}
		taken, msgs := end, 0
		for i, r := range runs {
			taken += runCost(r, counts[i])
			msgs += counts[i]
		}
		now := time.Now()
		switch {
		case msgs == 0 || msgs >= lingerBelow:
			streak = 0 // paused, or batching well without help
		case msgs == min(window, maxPull) || taken >= limit:
			streak = 0 // held back by the peer, not by the writers
		case ctx == tryCtx:
			// Lingered, and the stream goes on.
		case now.Sub(last) < lingerGap:
			streak++
		default:
			streak = 0
		}
		last = now
		if msgs > 0 {
			// Ours now, whatever happens to the connection. A run too
			// long for one RUN frame is cut into runs that fit.
			maxRun := c.maxRun()
			s.mu.Lock()
			for i, r := range runs {
				n := counts[i]
				for n > 1 && len(r) > maxRun {
					end := bytes.LastIndexByte(r[:maxRun], '\n') + 1
					k := bytes.Count(r[:end], newline)
					if end == 0 { // a line longer than a run may be: alone
						end, k = bytes.IndexByte(r, '\n')+1, 1
					}
					s.out.pushRun(r[:end], k)
					r, n = r[end:], n-k
				}
				s.out.pushRun(r, n)
			}
			s.mu.Unlock()
			clear(runs)
			runs, counts = runs[:0], counts[:0]
			// Write them from here when the writer is idle: handing
			// them over would cost a wake-up per batch, which for a
			// trickle of single messages is one per message.
			if c.wmu.TryLock() {
				bye, _, tooLarge, werr := c.writeReady(false)
				c.wmu.Unlock()
				if werr != nil {
					return werr
				}
				if bye || tooLarge != nil {
					c.wakeWriter() // the writer ends the connection
				}
			} else {
				c.wakeWriter()
			}
		}
		if err != nil {
			if c.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%w: taking a message: %w", errEndpoint, err)
		}
	}
}

// take takes messages from the endpoint, as runs, waiting for the first
// until ctx ends: up to count, and beyond the first only while the
// cumulative cost end stays within limit.
func (c *connRun) take(ctx context.Context, runs [][]byte, counts []int, count int, end, limit uint64) ([][]byte, []int, error) {
	bytes := int64(min(limit-end, 1<<62))
	if be, ok := c.s.ep.(BatchEndpoint); ok {
		return be.NextRuns(ctx, runs, counts, count, bytes)
	}
	return nextEach(c.s.ep, ctx, runs, counts, count, bytes)
}

// maxRun is the most bytes of lines one RUN frame may carry on this
// connection: its body is at most 8 + max message.
func (c *connRun) maxRun() int { return max(min(c.maxMsg-4, maxRunBytes), 1) }

// pending is a run of messages gathered for writing: n messages in b,
// the first numbered seq.
type pending struct {
	seq uint64
	b   []byte
	n   int
}

// writeReady writes every frame that is ready — CREDIT, ACK, PONG, DATA
// — in passes of up to maxBatch messages gathered under the session
// lock, and flushes once nothing more is ready. An ACK rides along with
// anything else written. fired says the flush timer went off. It stops
// short of a message too large for the link, and reports a BYE that is
// due; both are for the writer goroutine to carry out. c.wmu must be
// held.
func (c *connRun) writeReady(fired bool) (bye bool, byeText string, tooLarge error, err error) {
	s := c.s
	for {
		s.mu.Lock()
		recvOff := s.recvOff
		if fired {
			c.flushArmed = false
		}
		s.mu.Unlock()
		credit, sendCredit := c.credit(recvOff, fired)

		s.mu.Lock()
		var ack, pong uint64
		sendPong := false
		bye, byeText = c.bye, c.byeText
		if c.pong {
			pong, sendPong, c.pong = c.pongToken, true, false
		}
		batch := c.batch[:0]
		for msgs := 0; msgs < maxBatch && c.writeNext <= s.out.last(); {
			r := s.out.runAt(c.writeNext)
			if r.end > s.limit {
				break
			}
			if size := longest(r.b, r.n, c.maxMsg); size > c.maxMsg {
				tooLarge = fmt.Errorf("%w: message %d is %d bytes, the link's max is %d",
					ErrMessageTooLarge, c.writeNext, size, c.maxMsg)
				break
			}
			if len(batch) == 0 {
				signal(c.pullWake) // room ahead of the writer
			}
			batch = append(batch, pending{r.first, r.b, r.n})
			last := r.first + uint64(r.n) - 1
			if resent := min(last, s.maxWritten); resent >= r.first {
				s.stats.Resent += resent - r.first + 1
			}
			if last > s.maxWritten {
				s.stats.Sent += last - max(s.maxWritten, r.first-1)
				s.maxWritten = last
			}
			c.writeNext = last + 1
			msgs += r.n
		}
		// An ACK when one is due, or for free with anything else.
		due := c.ackWanted || fired || s.recvSeq-c.ackSent >= uint64(s.cfg.AckEvery)
		sendAck := s.recvSeq > c.ackSent && (due || sendCredit || sendPong || len(batch) > 0 || bye)
		if sendAck {
			ack, c.ackSent = s.recvSeq, s.recvSeq
		}
		c.ackWanted = false
		fired = false
		s.mu.Unlock()

		if sendCredit {
			err = writeFrame(c.bw, frame{typ: frameCredit, value: credit})
		}
		if !c.featuresSent && err == nil {
			// With the first CREDIT: what this side accepts.
			c.featuresSent = true
			err = writeFrame(c.bw, frame{typ: frameFeatures, value: featureRuns})
		}
		if sendAck && err == nil {
			err = writeFrame(c.bw, frame{typ: frameAck, value: ack})
		}
		if sendPong && err == nil {
			err = writeFrame(c.bw, frame{typ: framePong, value: pong})
		}
		if err == nil {
			err = c.writeBatch(batch)
		}
		clear(batch) // do not keep messages alive after they are acknowledged
		c.batch = batch
		if err != nil {
			return false, "", nil, fmt.Errorf("writing: %w", err)
		}
		wrote := sendAck || sendPong || sendCredit || len(batch) > 0
		c.wroteSinceTick = c.wroteSinceTick || wrote
		if !wrote || tooLarge != nil || bye {
			break
		}
	}
	if c.bw.Buffered() > 0 && tooLarge == nil && !bye {
		if err := c.bw.Flush(); err != nil {
			return false, "", nil, fmt.Errorf("writing: %w", err)
		}
	}
	return bye, byeText, tooLarge, nil
}

// writeBatch writes the frames of a gathered batch: a single message as
// DATA, a run of lines as RUN frames to a peer that accepts them, and as a
// DATA frame per line to one that does not.
func (c *connRun) writeBatch(batch []pending) error {
	runs, maxRun := c.peerRuns.Load(), c.maxRun()
	for _, p := range batch {
		b, seq := p.b, p.seq
		if p.n == 1 {
			if err := writeData(c.bw, seq, b); err != nil {
				return err
			}
			continue
		}
		if runs && len(b) <= maxRun {
			if err := writeRun(c.bw, seq, p.n, b); err != nil {
				return err
			}
			continue
		}
		for len(b) > 0 {
			// Runs taken on an earlier connection, with a larger max
			// message, are cut to this one's; a line too long for a RUN
			// goes as DATA.
			part := b[:bytes.IndexByte(b, '\n')+1]
			if runs && len(part) <= maxRun {
				part = b[:min(len(b), maxRun)]
				part = part[:bytes.LastIndexByte(part, '\n')+1]
			}
			var err error
			n := 1
			if len(part) == bytes.IndexByte(part, '\n')+1 {
				err = writeData(c.bw, seq, part)
			} else {
				n = bytes.Count(part, newline)
				err = writeRun(c.bw, seq, n, part)
			}
			if err != nil {
				return err
			}
			b, seq = b[len(part):], seq+uint64(n)
		}
	}
	return nil
}

// longest is the size of the longest message of a run of n messages in b,
// or a bound on it that is at most limit when the run is.
func longest(b []byte, n, limit int) int {
	if n == 1 || len(b) <= limit {
		return len(b)
	}
	most := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n') + 1
		most, b = max(most, i), b[i:]
	}
	return most
}

// maxRunBytes bounds the lines of one RUN frame, so that a receiver
// holds at most that much of a frame before it can deliver it.
const maxRunBytes = 256 << 10

// writer writes every frame the puller does not write itself: control
// frames, DATA the puller left (it was writing, or credit came later),
// PING when idle, and the last words — BYE, or ERROR for a message too
// large.
func (c *connRun) writer(readerDone <-chan struct{}) error {
	s := c.s
	roomChanged := s.ep.RoomChanged()
	ping := time.NewTicker(s.cfg.KeepAlive)
	defer ping.Stop()
	fired := false // the flush timer fired: send what it was armed for
	for c.ctx.Err() == nil {
		c.wmu.Lock()
		bye, byeText, tooLarge, err := c.writeReady(fired)
		fired = false
		if err != nil {
			c.wmu.Unlock()
			return err
		}
		if tooLarge != nil {
			// The peer would wait for this message for ever; say why not.
			c.bw.Write(errorFrame(tooLarge))
			c.bw.Flush()
			c.wmu.Unlock()
			return tooLarge
		}
		if bye {
			defer c.wmu.Unlock()
			return c.sayBye(byeText, readerDone)
		}
		c.wmu.Unlock()
		// Watch the room only while the peer may be waiting for credit:
		// otherwise every read of the local pipe would wake the writer
		// for a grant too small to send.
		s.mu.Lock()
		watch := s.granted-s.recvOff < uint64(c.maxMsg)
		s.mu.Unlock()
		var room <-chan struct{}
		if watch {
			room = roomChanged
		}
		select {
		case <-c.wake:
		case <-room:
		case <-c.flush.C:
			fired = true
		case <-ping.C:
			c.wmu.Lock()
			if !c.wroteSinceTick {
				err = writeFrame(c.bw, frame{typ: framePing, value: uint64(time.Now().UnixNano())})
			}
			c.wroteSinceTick = false
			c.wmu.Unlock()
			if err != nil {
				return fmt.Errorf("writing: %w", err)
			}
		case <-c.ctx.Done():
		}
	}
	return nil
}

// sayBye writes BYE and ends the connection after the peer has read it.
func (c *connRun) sayBye(text string, readerDone <-chan struct{}) error {
	err := writeFrame(c.bw, frame{typ: frameBye, data: []byte(text)})
	if err == nil {
		err = c.bw.Flush()
	}
	// Half-close, then wait for the peer to close: closing with input
	// unread would reset the connection, and a reset can destroy the BYE
	// before the peer reads it.
	if cw, ok := c.conn.Conn.(interface{ CloseWrite() error }); ok && err == nil && cw.CloseWrite() == nil {
		timer := time.NewTimer(c.s.cfg.HandshakeTimeout)
		select {
		case <-readerDone:
		case <-timer.C:
		case <-c.ctx.Done():
		}
		timer.Stop()
	}
	if text == "" {
		return ErrDisconnected
	}
	return fmt.Errorf("%w: %s", ErrDisconnected, text)
}

// credit decides whether to grant the peer more credit, and how much. The
// limit is absolute — the cumulative cost the peer may have sent, counted
// from the first message of the session — so a CREDIT lost with a
// connection is simply superseded by the next. recvOff must have been
// read before Room is, so that a delivery in between makes the grant
// smaller, never larger than the room. force sends a grant held back
// (ackDelay has passed).
func (c *connRun) credit(recvOff uint64, force bool) (uint64, bool) {
	s := c.s
	limit := recvOff + uint64(max(s.ep.Room(), 0))
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.creditSent {
		// Every connection starts with a CREDIT, so the peer knows its
		// limit even if the last one was lost. A grant never shrinks: the
		// peer may already be using it.
		c.creditSent = true
		s.granted = max(s.granted, limit)
		return s.granted, true
	}
	if limit <= s.granted {
		return 0, false
	}
	// Grant in steps rather than per message read. A peer with at least
	// a max message of credit left can send whatever it has, so it waits
	// for the next step. One with less may be waiting for exactly this:
	// it gets the grant at once if that lets it send anything, or doubles
	// what it may send; and otherwise within ackDelay, so that a reader
	// taking one small message at a time from a full pipe does not cost a
	// CREDIT each.
	grow, unused, after := limit-s.granted, s.granted-recvOff, limit-recvOff
	switch {
	case grow >= creditStep:
	case unused >= uint64(c.maxMsg):
		return 0, false
	case force || after >= uint64(c.maxMsg) || 2*grow >= after:
	default:
		c.armFlushLocked()
		return 0, false
	}
	s.granted = limit
	return limit, true
}

// creditStep is the smallest growth of credit worth a CREDIT frame while
// the peer still has plenty.
const creditStep = 32 << 10
