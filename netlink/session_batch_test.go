package netlink

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// batchEndpoint is a memEndpoint with the BatchEndpoint methods, counting
// the batches of more than one message it handed out and took in.
type batchEndpoint struct {
	*memEndpoint
	batchesOut, batchesIn atomic.Int64
}

func newBatchEndpoint(capacity int64) *batchEndpoint {
	return &batchEndpoint{memEndpoint: newMemEndpoint(capacity)}
}

func (e *batchEndpoint) NextBatch(ctx context.Context, dst [][]byte, count int, bytes int64) ([][]byte, error) {
	m, err := e.Next(ctx)
	if err != nil {
		return dst, err
	}
	dst = append(dst, m)
	total := int64(cost(m))
	e.mu.Lock()
	for n := 1; n < count && total < bytes && len(e.outbox) > 0; n++ {
		m := e.outbox[0]
		e.outbox = e.outbox[1:]
		e.taken++
		dst = append(dst, m)
		total += int64(cost(m))
		if n == 1 {
			e.batchesOut.Add(1)
		}
	}
	e.mu.Unlock()
	return dst, nil
}

func (e *batchEndpoint) DeliverBatch(msgs [][]byte) (int, error) {
	if len(msgs) > 1 {
		e.batchesIn.Add(1)
	}
	for i, m := range msgs {
		if err := e.Deliver(m); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

var _ BatchEndpoint = (*batchEndpoint)(nil)

// Sessions over batch endpoints: many messages both ways through small
// inboxes, so that credit runs out again and again, with the connection
// cut twice while they flow; every message arrives exactly once, in
// order, and the session took them from the endpoint in batches.
func TestSessionBatches(t *testing.T) {
	checkLeaks(t)
	const n, capacity = 20000, 4 << 10
	ea, eb := newBatchEndpoint(capacity), newBatchEndpoint(capacity)
	cfg := testConfig(t)
	a, err := NewSession(cfg, ea)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSession(cfg, eb)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	for i := range n {
		ea.send(streamMsg("up", i))
		eb.send(streamMsg("down", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var errs [2]error
	wg.Go(func() { errs[0] = consume(eb.memEndpoint, "up", n) })
	wg.Go(func() { errs[1] = consume(ea.memEndpoint, "down", n) })
	// Each connection ends after the receiving side has seen a third
	// more of the stream, wherever the frames in flight happen to be.
	for cut := 1; cut <= 3; cut++ {
		ca, cb := net.Pipe()
		errA := runAsync(t, func() error { return a.Run(ctx, ca, Dialer) })
		errB := runAsync(t, func() error { return b.Run(ctx, cb, Acceptor) })
		if cut < 3 {
			waitFor(t, fmt.Sprintf("a third of the stream, %d times", cut), func() bool {
				return b.Stats().Received >= uint64(cut*n/3)
			})
			ca.Close()
			wait(t, "a's Run", errA)
			wait(t, "b's Run", errB)
			continue
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "everything acknowledged", func() bool { return a.Stats().Outbox == 0 && b.Stats().Outbox == 0 })
		cancel()
		wait(t, "a's Run", errA)
		wait(t, "b's Run", errB)
	}
	for _, e := range []*batchEndpoint{ea, eb} {
		e.checkNoOverflow(t)
		if _, _, in := e.counts(); in != 0 {
			t.Errorf("%d messages beyond the stream", in)
		}
		if e.batchesOut.Load() == 0 {
			t.Errorf("the session never took more than one message at a time")
		}
	}
	if st := a.Stats(); st.Sent != n || st.Received != n || st.Connections != 3 {
		t.Errorf("a's stats %+v, want %d sent and received over 3 connections", st, n)
	}
}
