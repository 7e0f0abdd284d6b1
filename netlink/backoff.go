package netlink

import (
	"context"
	"math/rand/v2"
	"time"
)

// Default redial delays: the first retry comes quickly, later ones double
// up to the cap, so a peer that is down for long costs a dial every few
// seconds rather than a busy loop.
const (
	DefaultBackoffMin = 100 * time.Millisecond
	DefaultBackoffMax = 5 * time.Second
)

// backoff is capped exponential backoff with jitter, so that two sides
// that failed together do not retry in lockstep.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

// next returns the delay before the next attempt.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(half+1)
}

// reset starts again from the shortest delay, after a success.
func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends, returning ctx's error in that case.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
