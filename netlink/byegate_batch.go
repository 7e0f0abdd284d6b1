package netlink

import (
	"context"
	"errors"
)

// The gate passes an endpoint's BatchEndpoint methods through, with the
// gate's rules, so that a link's session moves batches as a server's does.

// NextBatch implements BatchEndpoint: Next for many messages, also over
// an endpoint that only has Next.
func (g *byeGate) NextBatch(ctx context.Context, dst [][]byte, count int, bytes int64) ([][]byte, error) {
	g.mu.Lock()
	closed := g.closed
	if !closed && len(g.held) > 0 {
		m := g.held[0]
		g.held = g.held[1:]
		g.mu.Unlock()
		return append(dst, m), nil
	}
	g.mu.Unlock()
	if !closed {
		start := len(dst)
		var err error
		if be, ok := g.Endpoint.(BatchEndpoint); ok {
			dst, err = be.NextBatch(ctx, dst, count, bytes)
		} else {
			dst, err = nextEach(g.Endpoint, ctx, dst, count, bytes)
		}
		if err != nil {
			return dst, err
		}
		g.mu.Lock()
		if !g.closed {
			g.mu.Unlock()
			return dst, nil
		}
		// Taken as the disconnect came: too late for this connection.
		g.held = append(g.held, dst[start:]...)
		clear(dst[start:])
		dst = dst[:start]
		g.mu.Unlock()
	}
	<-ctx.Done()
	return dst, ctx.Err()
}

// DeliverRuns implements BatchEndpoint; the gate holds nothing back on
// the way in.
func (g *byeGate) DeliverRuns(runs [][]byte, counts []int) (int, error) {
	if be, ok := g.Endpoint.(BatchEndpoint); ok {
		return be.DeliverRuns(runs, counts)
	}
	return deliverEach(g.Endpoint, runs, counts)
}

// nextEach is NextBatch made of Next calls: the first waits until ctx
// ends, the others take only what is already waiting.
func nextEach(ep Endpoint, ctx context.Context, dst [][]byte, count int, bytes int64) ([][]byte, error) {
	var total int64
	for n := 0; n < count && total < bytes; n++ {
		m, err := ep.Next(ctx)
		if err != nil {
			if n > 0 && ctx == tryCtx && errors.Is(err, context.Canceled) {
				err = nil // nothing more waiting
			}
			return dst, err
		}
		dst = append(dst, m)
		total += int64(cost(m))
		ctx = tryCtx
	}
	return dst, nil
}
