package pipe

import (
	"context"
	"errors"
	"testing"
	"time"
)

func nextBatchWithin(t *testing.T, pt *Port, count int, bytes int64) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms, err := pt.NextBatch(ctx, nil, count, bytes)
	if err != nil {
		t.Fatalf("NextBatch: %v", err)
	}
	var s []string
	for _, m := range ms {
		s = append(s, string(m))
	}
	return s
}

// NextBatch takes what is waiting, one message each, within its count
// and bytes (the last message may go beyond the bytes), and makes room for
// writers as Next does.
func TestPortNextBatch(t *testing.T) {
	s := DefaultSettings()
	s.Capacity, s.MaxMessage = 14, 14
	p, pt := mustSplit(t, s)
	s.Batch = true // a link forwards messages whole even so
	p.SetSettings(s)
	w := p.NewWriter()
	if _, err := w.Write([]byte("a\nbb\nccc\ndddd\n"), true, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("e\n"), true, nil, nil); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("write to a full outbox = %v; want ErrWouldBlock", err)
	}
	for _, c := range []struct {
		count int
		bytes int64
		want  []string
	}{
		{10, 4, []string{"a\n", "bb\n"}},
		{1, 100, []string{"ccc\n"}},
		{10, 100, []string{"dddd\n"}},
	} {
		got := nextBatchWithin(t, pt, c.count, c.bytes)
		if len(got) != len(c.want) {
			t.Fatalf("NextBatch(%d, %d) = %q; want %q", c.count, c.bytes, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("NextBatch(%d, %d) = %q; want %q", c.count, c.bytes, got, c.want)
			}
		}
	}
	if _, err := w.Write([]byte("e\n"), true, nil, nil); err != nil {
		t.Fatalf("write after the link took the messages = %v", err)
	}
	if got := nextBatchWithin(t, pt, 10, 100); len(got) != 1 || got[0] != "e\n" {
		t.Fatalf("NextBatch = %q; want the later write", got)
	}
	if err := pt.Join(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pt.NextBatch(context.Background(), nil, 10, 100); !errors.Is(err, ErrClosed) {
		t.Fatalf("NextBatch after Join = %v; want ErrClosed", err)
	}
}

// NextBatch with an ended context takes nothing from an empty outbox.
func TestPortNextBatchEndedContext(t *testing.T) {
	_, pt := mustSplit(t, DefaultSettings())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ms, err := pt.NextBatch(ctx, nil, 10, 100); !errors.Is(err, context.Canceled) || len(ms) != 0 {
		t.Fatalf("NextBatch = %q, %v; want nothing and the context's error", ms, err)
	}
}

// DeliverRuns queues every message, in order, a run of lines as the lines
// it holds, or none once the pipe is destroyed.
func TestPortDeliverRuns(t *testing.T) {
	s := DefaultSettings()
	s.Capacity, s.MaxMessage = 100, 100
	p, pt := mustSplit(t, s)
	runs := [][]byte{[]byte("one\n"), []byte("two\nthree\n"), []byte("four")}
	if n, err := pt.DeliverRuns(runs, []int{1, 2, 1}); n != 4 || err != nil {
		t.Fatalf("DeliverRuns = %d, %v; want 4, nil", n, err)
	}
	if got := pt.Room(); got != 82 {
		t.Fatalf("Room after 18 bytes = %d; want 82", got)
	}
	if st := p.Stats(); st.Messages != 4 {
		t.Fatalf("%d messages queued; want 4", st.Messages)
	}
	r := p.NewReader()
	for _, want := range []string{"one\n", "two\n", "three\n", "four"} {
		parts, err := r.Read(nil, 100, false, true, nil, nil)
		if err != nil || len(parts) != 1 || string(parts[0]) != want {
			t.Fatalf("local read = %q, %v; want %q", parts, err, want)
		}
	}
	p.Close()
	if n, err := pt.DeliverRuns([][]byte{[]byte("late\n")}, []int{1}); n != 0 || !errors.Is(err, ErrClosed) {
		t.Fatalf("DeliverRuns after Close = %d, %v; want 0, ErrClosed", n, err)
	}
}
