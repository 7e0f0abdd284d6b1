package netlink

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

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
// due once it has written every message the peer's credit allows (the
// messages taken before the disconnect go ahead of the BYE); both are for
// the writer goroutine to carry out. Once the session is closing it
// writes no more messages. c.wmu must be held.
func (c *connRun) writeReady(fired bool) (bye bool, byeText string, tooLarge error, err error) {
	s := c.s
	if c.byeWritten {
		return false, "", nil, nil // nothing may follow it
	}
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
		closing := s.closing.Load()
		for msgs := 0; !closing && msgs < maxBatch && c.writeNext <= s.out.last(); {
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
			err = c.fw.write(frame{typ: frameCredit, value: credit})
		}
		if !c.featuresSent && err == nil {
			// With the first CREDIT: what this side accepts.
			c.featuresSent = true
			err = c.fw.write(frame{typ: frameFeatures, value: featureRuns})
		}
		if sendAck && err == nil {
			err = c.fw.write(frame{typ: frameAck, value: ack})
		}
		if sendPong && err == nil {
			err = c.fw.write(frame{typ: framePong, value: pong})
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
		if !wrote || tooLarge != nil {
			break
		}
	}
	if tooLarge != nil || bye {
		return bye, byeText, tooLarge, nil // the writer flushes its last words
	}
	if c.bw.Buffered() > 0 {
		if err := c.bw.Flush(); err != nil {
			return false, "", nil, fmt.Errorf("writing: %w", err)
		}
	}
	if s.closing.Load() {
		s.mu.Lock()
		c.ackFlushed = c.ackSent
		c.checkSettledLocked()
		s.mu.Unlock()
	}
	return false, "", nil, nil
}

// writeBatch writes the frames of a gathered batch: a single message as
// DATA, a run of lines as RUN frames to a peer that accepts them, and as a
// DATA frame per line to one that does not.
func (c *connRun) writeBatch(batch []pending) error {
	runs, maxRun := c.peerRuns.Load(), c.maxRun()
	for _, p := range batch {
		b, seq := p.b, p.seq
		if p.n == 1 {
			if err := c.fw.data(seq, b); err != nil {
				return err
			}
			continue
		}
		if runs && len(b) <= maxRun {
			if err := c.fw.run(seq, p.n, b); err != nil {
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
				err = c.fw.data(seq, part)
			} else {
				n = bytes.Count(part, newline)
				err = c.fw.run(seq, n, part)
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
			c.fw.write(errorFrame(tooLarge))
			c.bw.Flush()
			c.wmu.Unlock()
			return tooLarge
		}
		if bye {
			err := c.writeBye(byeText)
			c.wmu.Unlock()
			return c.awaitClose(err, byeText, readerDone)
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
				err = c.fw.write(frame{typ: framePing, value: uint64(time.Now().UnixNano())})
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

// writeBye writes BYE, this side's last frame, and half-closes the
// connection. c.wmu must be held.
func (c *connRun) writeBye(text string) error {
	c.byeWritten = true
	err := c.fw.write(frame{typ: frameBye, data: []byte(text)})
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		return err
	}
	if cw, ok := c.conn.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// awaitClose ends the connection after the peer has read the BYE that
// writeBye wrote, if it could: it waits for the peer to close (its last
// ACK comes first), since closing with input unread would reset the
// connection, and a reset can destroy the BYE before the peer reads it.
func (c *connRun) awaitClose(err error, text string, readerDone <-chan struct{}) error {
	if err == nil {
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
