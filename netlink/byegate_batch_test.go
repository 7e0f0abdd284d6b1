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

func (e *probeEndpoint) NextRuns(ctx context.Context, runs [][]byte, counts []int, count int, bytes int64) ([][]byte, []int, error) {
	e.called <- struct{}{}
	select {
	case b := <-e.batches:
		for _, m := range b {
			runs, counts = append(runs, m), append(counts, 1)
		}
		return runs, counts, nil
	case <-ctx.Done():
		return runs, counts, ctx.Err()
	}
}

func (e *probeEndpoint) DeliverRuns(runs [][]byte, counts []int) (int, error) {
	return deliverEach(e.memEndpoint, runs, counts)
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
		ms, _, err := g.NextRuns(ctx, nil, nil, 10, 1<<20)
		done <- result{ms, err}
	}()
	<-ep.called // waiting in the endpoint
	g.close()   // nothing was waiting: nothing more may pass
	ep.batches <- [][]byte{[]byte("a\n"), []byte("b\n")}
	if r := <-done; !errors.Is(r.err, errGateClosed) || len(r.msgs) != 0 {
		t.Fatalf("NextRuns across the close = %q, %v; want nothing and errGateClosed", r.msgs, r.err)
	}
	cancel()
	g.open()
	var got []string
	for range 2 {
		ms, _, err := g.NextRuns(context.Background(), nil, nil, 10, 1<<20)
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

// DeliverRuns through the gate over an endpoint without it delivers one
// message at a time, a run as its lines, and says how many it delivered.
func TestByeGateDeliverRuns(t *testing.T) {
	ep := newMemEndpoint(1 << 20)
	g := newByeGate(ep)
	if n, err := g.DeliverRuns([][]byte{[]byte("a\n"), []byte("b\nc\n")}, []int{1, 2}); n != 3 || err != nil {
		t.Fatalf("DeliverRuns = %d, %v; want 3, nil", n, err)
	}
	if got := ep.inboxStrings(); len(got) != 3 || got[0] != "a\n" || got[1] != "b\n" || got[2] != "c\n" {
		t.Fatalf("inbox %q; want the three lines, in order", got)
	}
	ep.mu.Lock()
	ep.closed = true
	ep.mu.Unlock()
	if n, err := g.DeliverRuns([][]byte{[]byte("d\n")}, []int{1}); n != 0 || !errors.Is(err, ErrClosed) {
		t.Fatalf("DeliverRuns to a closed endpoint = %d, %v; want 0, ErrClosed", n, err)
	}
}
