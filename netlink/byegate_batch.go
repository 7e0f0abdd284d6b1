package netlink

import (
	"context"
	"errors"
)

// The gate passes an endpoint's BatchEndpoint methods through, with the
// gate's rules, so that a link's session moves batches as a server's does.

// NextRuns implements BatchEndpoint: Next for many messages, also over
// an endpoint that only has Next. Once the gate is closed it takes at
// most what the gate still lets through, and returns errGateClosed,
// taking nothing, after that.
func (g *byeGate) NextRuns(ctx context.Context, runs [][]byte, counts []int, count int, bytes int64) ([][]byte, []int, error) {
	g.mu.Lock()
	for g.closing {
		g.changed.Wait()
	}
	if !g.closed && len(g.held) > 0 {
		m := g.held[0]
		g.held = g.held[1:]
		g.mu.Unlock()
		return append(runs, m), append(counts, 1), nil
	}
	if g.closed {
		if g.allow == 0 {
			g.mu.Unlock()
			return runs, counts, errGateClosed
		}
		count = min(count, g.allow)
	}
	g.taking = true
	g.mu.Unlock()
	start := len(runs)
	var err error
	if be, ok := g.Endpoint.(BatchEndpoint); ok {
		runs, counts, err = be.NextRuns(ctx, runs, counts, count, bytes)
	} else {
		runs, counts, err = nextEach(g.Endpoint, ctx, runs, counts, count, bytes)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.taking = false
	g.changed.Broadcast()
	if err != nil {
		return runs, counts, err
	}
	if !g.closed {
		return runs, counts, nil
	}
	// Closed meanwhile, or before: let through what the gate allows, and
	// hold back the rest, whole messages in order, for the next
	// connection. A run of lines may be cut where the allowance ends.
	n := 0 // runs let through, the last perhaps in part
	var rest [][]byte
	for _, k := range counts[start:] {
		if g.allow == 0 {
			break
		}
		if k > g.allow {
			r := runs[start+n]
			end := len(r) - len(cutLines(r, g.allow))
			rest = splitRun(r[end:], k-g.allow)
			runs[start+n], counts[start+n] = r[:end:end], g.allow
			g.allow = 0
			n++
			break
		}
		g.allow -= k
		n++
	}
	g.held = append(g.held, rest...)
	for i := start + n; i < len(runs); i++ {
		g.held = append(g.held, splitRun(runs[i], counts[i])...)
	}
	clear(runs[start+n:])
	runs, counts = runs[:start+n], counts[:start+n]
	if n == 0 {
		return runs, counts, errGateClosed
	}
	return runs, counts, nil
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
