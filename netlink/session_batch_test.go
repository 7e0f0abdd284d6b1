package netlink

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
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

// NextRuns takes messages as a pipe's Port does: lines that lie side by
// side (see sendBlock) make one run.
func (e *batchEndpoint) NextRuns(ctx context.Context, runs [][]byte, counts []int, count int, bytes int64) ([][]byte, []int, error) {
	m, err := e.Next(ctx)
	if err != nil {
		return runs, counts, err
	}
	cur, curN, total := m, 1, int64(cost(m))
	e.mu.Lock()
	for taken := 1; taken < count && len(e.outbox) > 0 && total+int64(cost(e.outbox[0])) <= bytes; taken++ {
		m := e.outbox[0]
		e.outbox = e.outbox[1:]
		e.taken++
		total += int64(cost(m))
		if (curN > 1 || isLine(cur)) && isLine(m) && adjacent(cur, m) {
			cur, curN = cur[:len(cur)+len(m)], curN+1
			e.batchesOut.Add(1)
			continue
		}
		runs, counts = append(runs, cur), append(counts, curN)
		cur, curN = m, 1
		e.batchesOut.Add(1)
	}
	e.mu.Unlock()
	return append(runs, cur), append(counts, curN), nil
}

func (e *batchEndpoint) DeliverRuns(runs [][]byte, counts []int) (int, error) {
	for _, n := range counts {
		if n > 1 {
			e.batchesIn.Add(1)
		}
	}
	return deliverEach(e.memEndpoint, runs, counts)
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
			from := b.Stats().Received
			waitFor(t, fmt.Sprintf("a third of the stream, %d times", cut), func() bool {
				st := b.Stats()
				return st.State == StateUp && (st.Received > from || st.Received == n) && st.Received >= uint64(cut*n/3)
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

// sendBlock queues msgs as a local pipe holds the lines of one write:
// side by side in one buffer, each a slice of it.
func (e *batchEndpoint) sendBlock(msgs ...[]byte) {
	var buf []byte
	for _, m := range msgs {
		buf = append(buf, m...)
	}
	cut := make([][]byte, len(msgs))
	for i, m := range msgs {
		cut[i], buf = buf[:len(m)], buf[len(m):]
	}
	e.send(cut...)
}

// Lines that lie side by side cross as RUN frames to a peer that accepts
// them, and arrive as runs, exactly once and in order, across cuts and
// through inboxes smaller than a block.
func TestSessionRuns(t *testing.T) {
	checkLeaks(t)
	const blocks, per, capacity = 60, 200, 8 << 10
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
	for i := range blocks {
		block := make([][]byte, per)
		for j := range block {
			block[j] = streamMsg("up", i*per+j)
		}
		ea.sendBlock(block...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- consume(eb.memEndpoint, "up", blocks*per) }()
	for cut := 1; ; cut++ {
		ca, cb := net.Pipe()
		errA := runAsync(t, func() error { return a.Run(ctx, ca, Dialer) })
		errB := runAsync(t, func() error { return b.Run(ctx, cb, Acceptor) })
		if cut < 3 {
			from := b.Stats().Received
			waitFor(t, "a third of the stream", func() bool {
				st := b.Stats()
				return st.State == StateUp && (st.Received > from || st.Received == blocks*per) && st.Received >= uint64(cut*blocks*per/3)
			})
			ca.Close()
			wait(t, "a's Run", errA)
			wait(t, "b's Run", errB)
			continue
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		waitFor(t, "everything acknowledged", func() bool { return a.Stats().Outbox == 0 })
		cancel()
		wait(t, "a's Run", errA)
		wait(t, "b's Run", errB)
		break
	}
	eb.checkNoOverflow(t)
	if _, _, in := eb.counts(); in != 0 {
		t.Errorf("%d messages beyond the stream", in)
	}
	if eb.batchesIn.Load() == 0 {
		t.Errorf("no run of lines arrived in one piece")
	}
	if st := a.Stats(); st.Sent != blocks*per || st.Connections != 3 {
		t.Errorf("a's stats %+v, want %d sent over 3 connections", st, blocks*per)
	}
}

// rawSession runs a session as acceptor against a raw peer, over an
// endpoint holding one block of n adjacent lines, and returns the peer
// after the handshake; the peer has granted credit for everything.
func rawSession(t *testing.T, n int) (*rawPeer, *batchEndpoint, <-chan error) {
	t.Helper()
	ep := newBatchEndpoint(1 << 20)
	s, err := NewSession(testConfig(t), ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	block := make([][]byte, n)
	for i := range block {
		block[i] = fixed(i)
	}
	ep.sendBlock(block...)
	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close() })
	errS := runAsync(t, func() error { return s.Run(t.Context(), c2, Acceptor) })
	peer, err := dialRaw(c1, newSessionID(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return peer, ep, errS
}

// A peer that has not said it accepts RUN frames (an older pipefs) gets
// DATA only; the session says what it accepts after its first CREDIT.
func TestSessionRunsOnlyWhenAccepted(t *testing.T) {
	checkLeaks(t)
	peer, _, errS := rawSession(t, 10)
	var kinds []frameType
	go func() { peer.write(t, frame{typ: frameCredit, value: 1 << 20}) }()
	for len(kinds) < 12 {
		f, err := peer.fr.next()
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, f.typ)
		if f.typ == frameRun {
			t.Fatalf("RUN sent to a peer that did not accept it: %v", kinds)
		}
	}
	if kinds[0] != frameCredit || kinds[1] != frameFeatures {
		t.Fatalf("first frames %v; want CREDIT, FEATURES", kinds[:2])
	}
	peer.conn.Close()
	wait(t, "Run", errS)
}

// Once the peer accepts them, adjacent lines go as one RUN.
func TestSessionRunsWhenAccepted(t *testing.T) {
	checkLeaks(t)
	peer, _, errS := rawSession(t, 10)
	go func() {
		peer.write(t, frame{typ: frameFeatures, value: featureRuns})
		peer.write(t, frame{typ: frameCredit, value: 1 << 20})
	}()
	var got []frame
	for {
		f, err := peer.fr.next()
		if err != nil {
			t.Fatal(err)
		}
		if f.typ == frameData || f.typ == frameRun {
			got = append(got, f)
			break
		}
	}
	if f := got[0]; f.typ != frameRun || f.value != 1 || f.n != 10 || len(f.data) != 100 {
		t.Fatalf("got %s %d of %d messages, %d bytes; want RUN 1 of the 10 lines", f.typ, f.value, f.n, len(f.data))
	}
	peer.conn.Close()
	wait(t, "Run", errS)
}

// A receiver takes RUN frames as the DATA frames they stand for: what it
// already has is skipped, and a RUN that does not hold its lines, or
// leaves a gap, is a protocol error.
func TestSessionReceivesRuns(t *testing.T) {
	run := func(seq uint64, lines string) frame {
		return frame{typ: frameRun, value: seq, n: strings.Count(lines, "\n"), data: []byte(lines)}
	}
	tests := []struct {
		name   string
		frames []frame
		want   []string // delivered
		err    string
	}{
		{"overlap", []frame{run(1, "a\nb\nc\n"), run(2, "b\nc\nd\n"), run(1, "a\n"), {typ: frameData, value: 5, data: []byte("e\n")}}, []string{"a\n", "b\n", "c\n", "d\n", "e\n"}, ""},
		{"gap", []frame{run(2, "b\nc\n")}, nil, "RUN 2 after 0"},
		{"count", []frame{{typ: frameRun, value: 1, n: 3, data: []byte("a\nb\n")}}, nil, "does not hold 3 whole lines"},
		{"unfinished line", []frame{{typ: frameRun, value: 1, n: 1, data: []byte("a\nb")}}, nil, "does not hold 1 whole lines"},
		{"empty", []frame{{typ: frameRun, value: 1, n: 0}}, nil, "does not hold 0 whole lines"},
		{"beyond credit", []frame{run(1, strings.Repeat("x\n", 30))}, nil, "beyond credit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			ep := newBatchEndpoint(50)
			s, err := NewSession(testConfig(t), ep)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c1, c2 := net.Pipe()
			defer c1.Close()
			errS := runAsync(t, func() error { return s.Run(t.Context(), c2, Acceptor) })
			peer, err := dialRaw(c1, newSessionID(), 0, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			// A sender may send only within credit, and the session
			// grants it in its first frame: wait for it, as a real peer
			// does, then drain what the session writes.
			for {
				f, err := peer.fr.next()
				if err != nil {
					t.Fatalf("waiting for the session's first CREDIT: %v", err)
				}
				if f.typ == frameCredit {
					break
				}
			}
			go func() {
				for {
					if _, err := peer.fr.next(); err != nil {
						return
					}
				}
			}()
			for _, f := range tt.frames {
				c1.Write(appendFrame(nil, f))
			}
			if tt.err != "" {
				mustContain(t, wait(t, "Run", errS), tt.err)
				if _, _, in := ep.counts(); in != 0 {
					t.Fatalf("%d messages delivered", in)
				}
				return
			}
			for _, want := range tt.want {
				if got := ep.recv(t); got != want {
					t.Fatalf("received %q, want %q", got, want)
				}
			}
			// Counted once delivered, which the reader may see first.
			waitFor(t, fmt.Sprintf("%d counted as received", len(tt.want)), func() bool {
				return s.Stats().Received == uint64(len(tt.want))
			})
			c1.Close()
			wait(t, "Run", errS)
		})
	}
}

// isLine reports whether m is one line: its only '\n' is its last byte.
func isLine(m []byte) bool {
	return len(m) > 0 && bytes.IndexByte(m, '\n') == len(m)-1
}

// adjacent reports whether b starts where a ends, in the same allocation.
func adjacent(a, b []byte) bool {
	return len(b) > 0 && cap(a) > len(a) && &a[:len(a)+1][len(a)] == &b[0]
}
