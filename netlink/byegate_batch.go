package netlink

import "context"

// The gate passes an endpoint's BatchEndpoint methods through, with the
// gate's rules, so that a link's session moves batches as a server's does.

// NextBatch implements BatchEndpoint: Next for many messages. An endpoint
// without NextBatch gives one message per call.
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
			var m []byte
			if m, err = g.Endpoint.Next(ctx); err == nil {
				dst = append(dst, m)
			}
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

// DeliverBatch implements BatchEndpoint; the gate holds nothing back on
// the way in.
func (g *byeGate) DeliverBatch(msgs [][]byte) (int, error) {
	if be, ok := g.Endpoint.(BatchEndpoint); ok {
		return be.DeliverBatch(msgs)
	}
	for i, m := range msgs {
		if err := g.Endpoint.Deliver(m); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}
