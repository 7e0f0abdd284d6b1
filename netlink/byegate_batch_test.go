package netlink

import (
	"context"
	"errors"
	"testing"
)

// probeEndpoint hands out, from NextBatch, the batches the test gives it,
// after telling the test that it was called.
type probeEndpoint struct {
	*memEndpoint
	called  chan struct{}
	batches chan [][]byte
}

func (e *probeEndpoint) NextBatch(ctx context.Context, dst [][]byte, count int, bytes int64) ([][]byte, error) {
	e.called <- struct{}{}
	select {
	case b := <-e.batches:
		return append(dst, b...), nil
	case <-ctx.Done():
		return dst, ctx.Err()
	}
}

func (e *probeEndpoint) DeliverBatch(msgs [][]byte) (int, error) {
	for i, m := range msgs {
		if err := e.Deliver(m); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

// A batch taken as the gate closes is held back for the next connection,
// ahead of anything newer, as a single message would be.
func TestByeGateHoldsBatch(t *testing.T) {
	ep := &probeEndpoint{memEndpoint: newMemEndpoint(1 << 20), called: make(chan struct{}), batches: make(chan [][]byte)}
	g := newByeGate(ep)
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		msgs [][]byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		ms, err := g.NextBatch(ctx, nil, 10, 1<<20)
		done <- result{ms, err}
	}()
	<-ep.called // waiting in the endpoint
	g.close()
	ep.batches <- [][]byte{[]byte("a\n"), []byte("b\n")}
	cancel()
	if r := <-done; !errors.Is(r.err, context.Canceled) || len(r.msgs) != 0 {
		t.Fatalf("NextBatch across the close = %q, %v; want nothing and the context's error", r.msgs, r.err)
	}
	g.open()
	var got []string
	for range 2 {
		ms, err := g.NextBatch(context.Background(), nil, 10, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			got = append(got, string(m))
		}
	}
	if len(got) != 2 || got[0] != "a\n" || got[1] != "b\n" {
		t.Fatalf("after open: %q; want the held batch, in order", got)
	}
}

// DeliverBatch through the gate over an endpoint without it delivers one
// message at a time and says how many it delivered.
func TestByeGateDeliverBatch(t *testing.T) {
	ep := newMemEndpoint(1 << 20)
	g := newByeGate(ep)
	if n, err := g.DeliverBatch([][]byte{[]byte("a\n"), []byte("b\n")}); n != 2 || err != nil {
		t.Fatalf("DeliverBatch = %d, %v; want 2, nil", n, err)
	}
	if got := ep.inboxStrings(); len(got) != 2 || got[0] != "a\n" || got[1] != "b\n" {
		t.Fatalf("inbox %q; want both, in order", got)
	}
	ep.mu.Lock()
	ep.closed = true
	ep.mu.Unlock()
	if n, err := g.DeliverBatch([][]byte{[]byte("c\n")}); n != 0 || !errors.Is(err, ErrClosed) {
		t.Fatalf("DeliverBatch to a closed endpoint = %d, %v; want 0, ErrClosed", n, err)
	}
}
