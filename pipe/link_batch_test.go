package pipe

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// nextRunsWithin takes runs and returns them as "n:bytes" strings.
func nextRunsWithin(t *testing.T, pt *Port, count int, bytes int64) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runs, counts, err := pt.NextRuns(ctx, nil, nil, count, bytes)
	if err != nil {
		t.Fatalf("NextRuns: %v", err)
	}
	var s []string
	for i, r := range runs {
		s = append(s, fmt.Sprintf("%d:%s", counts[i], r))
	}
	return s
}

// NextRuns takes what is waiting within its count and bytes, the lines
// of one write as one run (cut where a limit falls), and makes room for
// writers as Next does.
func TestPortNextRuns(t *testing.T) {
	s := DefaultSettings()
	s.Capacity, s.MaxMessage = 40, 40
	p, pt := mustSplit(t, s)
	s.Batch = true // a link forwards messages whole even so
	p.SetSettings(s)
	w := p.NewWriter()
	for _, write := range []string{"a\nbb\nccc\ndddd\n", "e\nf\n", "gg\nh\n", "tail"} {
		if _, err := w.Write([]byte(write), true, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	w.Close() // the tail becomes a message of its own
	w = p.NewWriter()
	for _, c := range []struct {
		count int
		bytes int64
		want  string
	}{
		{10, 6, "[2:a\nbb\n]"},          // the bytes limit cuts the run
		{1, 100, "[1:ccc\n]"},           // so does the count
		{3, 100, "[1:dddd\n 2:e\nf\n]"}, // runs end where writes did
		{10, 1, "[1:gg\n]"},             // the first message goes whatever its size
		{10, 100, "[1:h\n 1:tail\n]"},   // the rest of the run, then the tail
	} {
		if got := fmt.Sprint(nextRunsWithin(t, pt, c.count, c.bytes)); got != c.want {
			t.Fatalf("NextRuns(%d, %d) = %q; want %q", c.count, c.bytes, got, c.want)
		}
	}
	if _, err := w.Write([]byte("y\n"), true, nil, nil); err != nil {
		t.Fatalf("write after the link took the messages = %v", err)
	}
	if err := pt.Join(nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pt.NextRuns(context.Background(), nil, nil, 10, 100); !errors.Is(err, ErrClosed) {
		t.Fatalf("NextRuns after Join = %v; want ErrClosed", err)
	}
}

// A full outbox makes room when the link takes from it.
func TestPortNextRunsMakesRoom(t *testing.T) {
	s := DefaultSettings()
	s.Capacity, s.MaxMessage = 8, 8
	p, pt := mustSplit(t, s)
	w := p.NewWriter()
	if _, err := w.Write([]byte("123\n567\n"), true, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x\n"), true, nil, nil); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("write to a full outbox = %v; want ErrWouldBlock", err)
	}
	if got := fmt.Sprint(nextRunsWithin(t, pt, 10, 100)); got != "[2:123\n567\n]" {
		t.Fatalf("NextRuns = %q", got)
	}
	if _, err := w.Write([]byte("x\n"), true, nil, nil); err != nil {
		t.Fatalf("write after the link took the messages = %v", err)
	}
}

// NextRuns with an ended context takes nothing from an empty outbox.
func TestPortNextRunsEndedContext(t *testing.T) {
	_, pt := mustSplit(t, DefaultSettings())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if runs, _, err := pt.NextRuns(ctx, nil, nil, 10, 100); !errors.Is(err, context.Canceled) || len(runs) != 0 {
		t.Fatalf("NextRuns = %q, %v; want nothing and the context's error", runs, err)
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
