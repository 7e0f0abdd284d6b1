package netlink

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// bufSize is the size of each connection's read and write buffers: large
// enough that a burst of small messages is one syscall each way.
const bufSize = 64 << 10

// maxBatch bounds the frames the writer gathers under the session lock at
// a time, so the reader and puller are never held off for long.
const maxBatch = 256

// deadlineConn pushes the connection's deadline forward before every read
// and write, so that a peer that goes silent (or stops reading) for idle
// is given up rather than waited on forever. Zero idle sets no deadline.
type deadlineConn struct {
	net.Conn
	idle time.Duration
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	if d.idle > 0 {
		d.Conn.SetReadDeadline(time.Now().Add(d.idle))
	}
	return d.Conn.Read(p)
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if d.idle > 0 {
		d.Conn.SetWriteDeadline(time.Now().Add(d.idle))
	}
	return d.Conn.Write(p)
}

// connRun is the state of one served connection. Fields marked (mu) are
// guarded by the session's mutex.
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

	writeNext uint64 // (mu) the next sequence number to write
	ackSent   uint64 // (mu) the last ACK written
	ackWanted bool   // (mu) the reader asks for an ACK now
	pong      bool   // (mu) a PING is waiting for its PONG
	pongToken uint64 // (mu)
	bye       bool   // (mu) Disconnect asked for a BYE
	byeText   string // (mu)

	creditSent bool // (mu) a CREDIT was written on this connection
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (c *connRun) wakeWriter() { signal(c.wake) }

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
	}
	defer func() {
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

// reader handles every frame that arrives.
func (c *connRun) reader() error {
	s := c.s
	for {
		if !c.fr.buffered() {
			// About to wait for the peer: acknowledge what came, so the
			// peer is never left waiting for an ACK that a batch holds back.
			c.ackIfBehind()
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
			if err := c.receive(f); err != nil {
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
			s.limit = max(s.limit, f.value)
			s.mu.Unlock()
			signal(c.pullWake)
			c.wakeWriter()
		case framePing:
			s.mu.Lock()
			c.pong, c.pongToken = true, f.value
			s.mu.Unlock()
			c.wakeWriter()
		case framePong:
		case frameBye:
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

// receive delivers one DATA frame, discarding a duplicate.
func (c *connRun) receive(f frame) error {
	s := c.s
	s.mu.Lock()
	recvSeq, recvOff, granted := s.recvSeq, s.recvOff, s.granted
	s.mu.Unlock()
	switch {
	case f.value <= recvSeq:
		return nil // already delivered
	case f.value != recvSeq+1:
		return fmt.Errorf("%w: DATA %d after %d", ErrProtocol, f.value, recvSeq)
	case recvOff+cost(f.data) > granted:
		return fmt.Errorf("%w: DATA %d of %d bytes beyond credit (%d of %d used)",
			ErrProtocol, f.value, len(f.data), recvOff, granted)
	}
	// Only this goroutine delivers, so nothing moves recvSeq meanwhile.
	// Deliver comes before recvOff grows: the writer reads recvOff before
	// Room, so it may under-count credit but never over-count it.
	if err := s.ep.Deliver(f.data); err != nil {
		return fmt.Errorf("%w: delivering: %w", errEndpoint, err)
	}
	s.mu.Lock()
	s.recvSeq = f.value
	s.recvOff += cost(f.data)
	s.stats.Received++
	// Acknowledge in batches: every AckEvery messages, and (in reader)
	// whenever everything that arrived has been read.
	want := s.recvSeq-c.ackSent >= uint64(s.cfg.AckEvery) && !c.ackWanted
	c.ackWanted = c.ackWanted || want
	s.mu.Unlock()
	if want {
		c.wakeWriter()
	}
	return nil
}

// ackIfBehind asks the writer for an ACK if messages were delivered since
// the last one.
func (c *connRun) ackIfBehind() {
	s := c.s
	s.mu.Lock()
	want := s.recvSeq > c.ackSent && !c.ackWanted
	c.ackWanted = c.ackWanted || want
	s.mu.Unlock()
	if want {
		c.wakeWriter()
	}
}

// puller takes messages from the endpoint while the peer's credit and the
// unacknowledged window allow, so that when the peer is full the messages
// wait in the local outbox, where writers see a full pipe.
func (c *connRun) puller() error {
	s := c.s
	for {
		s.mu.Lock()
		can := !c.bye && s.out.len() < s.cfg.MaxUnacked && s.out.lastEnd() < s.limit
		s.mu.Unlock()
		if !can {
			select {
			case <-c.pullWake:
				continue
			case <-c.ctx.Done():
				return nil
			}
		}
		msg, err := s.ep.Next(c.ctx)
		if msg != nil || err == nil {
			// Ours now, whatever happens to the connection.
			s.mu.Lock()
			s.out.push(msg)
			s.mu.Unlock()
			c.wakeWriter()
		}
		if err != nil {
			if c.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%w: taking a message: %w", errEndpoint, err)
		}
	}
}

// pending is one DATA frame gathered for writing.
type pending struct {
	seq uint64
	msg []byte
}

// writer writes every frame, batching: it gathers what is ready, writes it
// into the buffer, and flushes only when nothing more is ready.
func (c *connRun) writer(readerDone <-chan struct{}) error {
	s := c.s
	roomChanged := s.ep.RoomChanged()
	ping := time.NewTicker(s.cfg.KeepAlive)
	defer ping.Stop()
	var batch []pending
	wroteSinceTick := false
	for c.ctx.Err() == nil {
		s.mu.Lock()
		var ack, pong uint64
		sendAck, sendPong, bye, byeText := false, false, c.bye, c.byeText
		if c.ackWanted || s.recvSeq-c.ackSent >= uint64(s.cfg.AckEvery) {
			if s.recvSeq > c.ackSent {
				ack, sendAck, c.ackSent = s.recvSeq, true, s.recvSeq
			}
			c.ackWanted = false
		}
		if c.pong {
			pong, sendPong, c.pong = c.pongToken, true, false
		}
		batch = batch[:0]
		var tooLarge error
		for len(batch) < maxBatch && c.writeNext <= s.out.last() {
			msg, end := s.out.at(c.writeNext)
			if end > s.limit {
				break
			}
			if len(msg) > c.maxMsg {
				tooLarge = fmt.Errorf("%w: message %d is %d bytes, the link's max is %d",
					ErrMessageTooLarge, c.writeNext, len(msg), c.maxMsg)
				break
			}
			batch = append(batch, pending{c.writeNext, msg})
			if c.writeNext <= s.maxWritten {
				s.stats.Resent++
			} else {
				s.stats.Sent++
				s.maxWritten = c.writeNext
			}
			c.writeNext++
		}
		recvOff := s.recvOff
		s.mu.Unlock()

		credit, sendCredit := c.credit(recvOff)
		wrote := sendAck || sendPong || sendCredit || len(batch) > 0
		var err error
		put := func(f frame) {
			if err == nil {
				err = writeFrame(c.bw, f)
			}
		}
		if sendCredit {
			put(frame{typ: frameCredit, value: credit})
		}
		if sendAck {
			put(frame{typ: frameAck, value: ack})
		}
		if sendPong {
			put(frame{typ: framePong, value: pong})
		}
		for _, p := range batch {
			put(frame{typ: frameData, value: p.seq, data: p.msg})
		}
		clear(batch) // do not keep messages alive after they are acknowledged
		if err != nil {
			return fmt.Errorf("writing: %w", err)
		}
		if tooLarge != nil {
			// The peer would wait for this message for ever; say why not.
			c.bw.Write(errorFrame(tooLarge))
			c.bw.Flush()
			return tooLarge
		}
		if bye {
			return c.sayBye(byeText, readerDone)
		}
		if wrote {
			wroteSinceTick = true
			continue
		}
		if c.bw.Buffered() > 0 {
			if err := c.bw.Flush(); err != nil {
				return fmt.Errorf("writing: %w", err)
			}
		}
		select {
		case <-c.wake:
		case <-roomChanged:
		case <-ping.C:
			if !wroteSinceTick {
				if err := writeFrame(c.bw, frame{typ: framePing, value: uint64(time.Now().UnixNano())}); err != nil {
					return fmt.Errorf("writing: %w", err)
				}
			}
			wroteSinceTick = false
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
// smaller, never larger than the room.
func (c *connRun) credit(recvOff uint64) (uint64, bool) {
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
	// Grant in steps rather than per message read, but at once when the
	// peer may be stuck: with less than a message of credit left it may
	// be waiting for exactly this.
	if limit-s.granted < creditStep && s.granted-recvOff >= uint64(c.maxMsg) {
		return 0, false
	}
	s.granted = limit
	return limit, true
}

// creditStep is the smallest growth of credit worth a CREDIT frame while
// the peer still has plenty.
const creditStep = 32 << 10
