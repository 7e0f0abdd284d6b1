package netlink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

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

// puller takes messages from the endpoint while the peer's credit and the
// unacknowledged window allow, so that when the peer is full the messages
// wait in the local outbox, where writers see a full pipe. It waits for
// one message, then takes what else is waiting without waiting, and hands
// them to the writer together. After a disconnect it takes, without
// waiting, what the endpoint still lets through (byeGate: what was
// waiting at the disconnect), as far as credit allows, and then lets the
// BYE go; once the session is closing it takes nothing.
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
		room := window > 0 && end < limit
		draining := c.byeDrain && !c.bye
		if draining && (!room || s.closing.Load()) {
			// The peer's credit holds the rest back: it goes on the next
			// connection, after the BYE.
			c.byeDueLocked()
			draining = false
		}
		can := !c.bye && !s.closing.Load() && room && unsent < maxPull
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
		if draining {
			ctx = tryCtx
		} else if streak >= lingerAfter {
			// A stream of small batches: let it gather for a moment,
			// then take what came without waiting.
			timer.Reset(linger)
			select {
			case <-timer.C:
			case <-c.ctx.Done():
				return nil
			}
			s.mu.Lock()
			bye := c.bye || c.byeDrain
			s.mu.Unlock()
			if bye {
				continue // a disconnect came meanwhile
			}
			ctx = tryCtx
		}
		var err error
		runs, counts, err = c.take(ctx, runs, counts, min(window, maxPull), end, limit)
		gateClosed := errors.Is(err, errGateClosed)
		if gateClosed || (errors.Is(err, context.Canceled) && ctx == tryCtx && c.ctx.Err() == nil) {
			// Nothing came: the stream has paused, or the gate has let
			// through what it had for the BYE.
			err = nil
			s.mu.Lock()
			if c.byeDrain && !c.bye && len(runs) == 0 {
				c.byeDueLocked()
			}
			early := gateClosed && !c.bye && !c.byeDrain
			s.mu.Unlock()
			if early && len(runs) == 0 {
				// The gate closed just before the disconnect reached the
				// session: wait for it rather than spin.
				select {
				case <-c.pullWake:
				case <-c.ctx.Done():
					return nil
				}
				continue
			}
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

// byeDueLocked lets the BYE go, once the writer has written what it can.
// The session's mutex must be held.
func (c *connRun) byeDueLocked() {
	c.bye, c.byeDrain = true, false
	c.wakeWriter()
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
