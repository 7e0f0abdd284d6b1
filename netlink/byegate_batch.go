package netlink

import (
	"context"
	"errors"
)

// The gate passes an endpoint's BatchEndpoint methods through, with the
// gate's rules, so that a link's session moves batches as a server's does.

// NextRuns implements BatchEndpoint: Next for many messages, also over
// an endpoint that only has Next.
func (g *byeGate) NextRuns(ctx context.Context, runs [][]byte, counts []int, count int, bytes int64) ([][]byte, []int, error) {
	g.mu.Lock()
	closed := g.closed
	if !closed && len(g.held) > 0 {
		m := g.held[0]
		g.held = g.held[1:]
		g.mu.Unlock()
		return append(runs, m), append(counts, 1), nil
	}
	g.mu.Unlock()
	if !closed {
		start := len(runs)
		var err error
		if be, ok := g.Endpoint.(BatchEndpoint); ok {
			runs, counts, err = be.NextRuns(ctx, runs, counts, count, bytes)
		} else {
			runs, counts, err = nextEach(g.Endpoint, ctx, runs, counts, count, bytes)
		}
		if err != nil {
			return runs, counts, err
		}
		g.mu.Lock()
		if !g.closed {
			g.mu.Unlock()
			return runs, counts, nil
		}
		// Taken as the disconnect came: too late for this connection.
		for i, r := range runs[start:] {
			g.held = append(g.held, splitRun(r, counts[start+i])...)
		}
		clear(runs[start:])
		runs, counts = runs[:start], counts[:start]
		g.mu.Unlock()
	}
	<-ctx.Done()
	return runs, counts, ctx.Err()
}

// DeliverRuns implements BatchEndpoint; the gate holds nothing back on
// the way in.
func (g *byeGate) DeliverRuns(runs [][]byte, counts []int) (int, error) {
	if be, ok := g.Endpoint.(BatchEndpoint); ok {
		return be.DeliverRuns(runs, counts)
	}
	return deliverEach(g.Endpoint, runs, counts)
}

// nextEach is NextRuns made of Next calls, a run per message: the first
// waits until ctx ends, the others take only what is already waiting.
func nextEach(ep Endpoint, ctx context.Context, runs [][]byte, counts []int, count int, bytes int64) ([][]byte, []int, error) {
	var total int64
	for n := 0; n < count; n++ {
		m, err := ep.Next(ctx)
		if err != nil {
			if n > 0 && ctx == tryCtx && errors.Is(err, context.Canceled) {
				err = nil // nothing more waiting
			}
			return runs, counts, err
		}
		runs, counts = append(runs, m), append(counts, 1)
		if total += int64(cost(m)); total >= bytes {
			break
		}
		ctx = tryCtx
	}
	return runs, counts, nil
}
