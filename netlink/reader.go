package netlink

import (
	"bytes"
	"fmt"
	"io"
)

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
			c.checkSettledLocked()
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
			// A line, like every message of a lines-mode pipe, so that
			// `read -r line < out` and `head -n 1 out` see it: a newline
			// in the text must not end it early.
			text := CleanText(string(f.data))
			msg := "BYE"
			if text != "" {
				msg += " " + text
			}
			msg += "\n"
			if !s.closing.Load() { // else nobody is left to tell
				if err := s.ep.Deliver([]byte(msg)); err != nil {
					return fmt.Errorf("%w: delivering BYE: %w", errEndpoint, err)
				}
			}
			// The connection ends either way; an ACK that cannot be
			// written leaves the peer to resend what it covered.
			c.ackAll()
			return &ByeError{Text: text}
		case frameError:
			return fmt.Errorf("%w: %s", ErrRefused, CleanText(string(f.data)))
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
	c.deliverMu.Lock()
	defer c.deliverMu.Unlock()
	if s.closing.Load() {
		// Close has sent its last ACK: what is not delivered now stays
		// the peer's, which keeps it (or hands it back) unacknowledged.
		clear(c.inbox)
		c.inbox, c.inboxN, c.inboxMsgs = c.inbox[:0], c.inboxN[:0], 0
		return nil
	}
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

// ackAll writes and flushes an ACK of every message delivered, if the
// last one written did not cover them all: the peer's BYE ends the
// connection, and without it the peer would keep messages this side has
// delivered, and hand them back if its pipe is unlinked. The peer, which
// reads until this side closes, takes it.
func (c *connRun) ackAll() error {
	s := c.s
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.byeWritten {
		return nil // both sides said BYE at once: nothing may follow ours
	}
	s.mu.Lock()
	ack, send := s.recvSeq, s.recvSeq > c.ackSent
	if send {
		c.ackSent = ack
	}
	s.mu.Unlock()
	if !send {
		return nil
	}
	err := c.fw.write(frame{typ: frameAck, value: ack})
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	return nil
}
