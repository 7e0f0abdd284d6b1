package pipe

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// The ring behaves as a deque of messages through growth, wrap-around,
// pushes at the front and shrinking, compared against a plain slice.
func TestRingModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var r ring
	var model [][]byte
	next := 0
	msg := func() []byte { next++; return []byte(strconv.Itoa(next)) }
	maxSize := 0
	for step := range 200000 {
		// Phases of growth and of draining, so the ring grows and shrinks.
		grow := (step/5000)%2 == 0
		pushes := 2 // of ten operations; the rest pop
		if grow {
			pushes = 6
		}
		switch op := rng.IntN(10); {
		case op < pushes-1:
			m := msg()
			r.push(m)
			model = append(model, m)
		case op < pushes:
			m := msg()
			r.pushFront(m)
			model = append([][]byte{m}, model...)
		case len(model) > 0:
			got, want := r.pop(), model[0]
			model = model[1:]
			if string(got) != string(want) {
				t.Fatalf("step %d: pop = %q; want %q", step, got, want)
			}
		}
		if r.len() != len(model) {
			t.Fatalf("step %d: len = %d; want %d", step, r.len(), len(model))
		}
		if len(model) > 0 {
			if b, _ := r.peekRun(); string(b) != string(model[0]) {
				t.Fatalf("step %d: peekRun = %q; want %q", step, b, model[0])
			}
		}
		if n := len(r.buf); n&(n-1) != 0 || n < r.n {
			t.Fatalf("step %d: %d slots for %d messages; want a power of two at least as many", step, n, r.n)
		}
		maxSize = max(maxSize, len(r.buf))
	}
	if maxSize < 1024 {
		t.Fatalf("the ring never grew past %d slots; the test does not exercise growth", maxSize)
	}
	for len(model) > 0 {
		if got := r.pop(); string(got) != string(model[0]) {
			t.Fatalf("final pop = %q; want %q", got, model[0])
		}
		model = model[1:]
	}
	if len(r.buf) > 4*minRingSize {
		t.Fatalf("an empty ring keeps %d slots; want at most %d", len(r.buf), 4*minRingSize)
	}
}

// Popped slots are cleared so that the ring does not keep payloads alive.
func TestRingPopClearsSlot(t *testing.T) {
	var r ring
	r.push([]byte("a"))
	r.push([]byte("b"))
	r.pop()
	for i, m := range r.buf {
		if m.b != nil && string(m.b) != "b" {
			t.Fatalf("slot %d still holds %q after its message was popped", i, m.b)
		}
	}
	r.clear()
	if r.len() != 0 || r.buf != nil {
		t.Fatalf("clear left %d messages in %d slots", r.len(), len(r.buf))
	}
}

// The queue's message count and byte count agree with what is in it and
// with what readers hold, whatever happens.
func TestQueueAccounting(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p, err := New("acct", Settings{Capacity: 64, MaxMessage: 16})
	if err != nil {
		t.Fatal(err)
	}
	q := p.recv
	writers := []*Writer{p.NewWriter(), p.NewWriter()}
	readers := []*Reader{p.NewReader(), p.NewReader(), p.NewReader()}
	for step := range 20000 {
		switch rng.IntN(8) {
		case 0, 1, 2:
			b := make([]byte, rng.IntN(20))
			for i := range b {
				b[i] = "ab\n"[rng.IntN(3)]
			}
			writers[rng.IntN(len(writers))].Write(b, true, nil, nil)
		case 3, 4:
			readers[rng.IntN(len(readers))].Read(nil, 1+rng.IntN(20), rng.IntN(4) == 0, true, nil, nil)
		case 5:
			readers[rng.IntN(len(readers))].Close()
		case 6:
			writers[rng.IntN(len(writers))].Close()
		case 7:
			cmd := []string{"batch on", "batch off", "clear", "capacity 32", "capacity 64"}[rng.IntN(5)]
			if err := p.Control(cmd); err != nil {
				t.Fatal(err)
			}
		}
		count, bytes := 0, int64(0)
		for i := range q.msgs.len() {
			slot := q.msgs.buf[(q.msgs.head+i)&(len(q.msgs.buf)-1)]
			count += slot.n
			bytes += int64(len(slot.b))
		}
		for _, r := range readers {
			if r.partial != nil {
				count++
				bytes += int64(len(r.partial))
			}
		}
		if q.count != count || q.bytes != bytes {
			t.Fatalf("step %d: queue counts %d messages, %d bytes; it holds %d, %d", step, q.count, q.bytes, count, bytes)
		}
		if q.enqueued-q.delivered < uint64(q.count) {
			t.Fatalf("step %d: %d enqueued, %d delivered, but %d waiting", step, q.enqueued, q.delivered, q.count)
		}
	}
}

// A run of lines gives its messages one at a time to pop, and its front
// lines to cutRun, while peekRun and popRun see the rest as one slot.
func TestRingRuns(t *testing.T) {
	var r ring
	r.pushRun([]byte("a\nbb\nccc\n"), 3)
	r.push([]byte("x\ny")) // one message that merely contains '\n'
	if got := string(r.pop()); got != "a\n" {
		t.Fatalf("pop = %q; want %q", got, "a\n")
	}
	if b, n := r.peekRun(); string(b) != "bb\nccc\n" || n != 2 {
		t.Fatalf("peekRun = %q, %d; want the two lines left", b, n)
	}
	r.cutRun(3, 1)
	if b, n := r.popRun(); string(b) != "ccc\n" || n != 1 {
		t.Fatalf("popRun = %q, %d; want the last line", b, n)
	}
	if got := string(r.pop()); got != "x\ny" || r.len() != 0 {
		t.Fatalf("pop = %q with %d runs left; want the whole packet and none", got, r.len())
	}
}
