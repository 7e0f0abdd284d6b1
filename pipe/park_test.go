package pipe_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pipefs/pipe"
)

func TestParkedReadCompletedByWrite(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	done := make(readDone, 1)
	req := parkRead(t, r, 100, done)
	none(t, done, "a read on an empty pipe")
	checkStats(t, p, pipe.Stats{Readers: 1})
	write(t, w, "hello\n")
	if got := wait(t, done, "the parked read"); got != req {
		t.Fatalf("ReadDone got request %p; want %p", got, req)
	}
	if string(bytes.Join(req.Parts, nil)) != "hello\n" || req.Err != nil || req.N() != 6 {
		t.Fatalf("parked read = %q (N %d), %v; want \"hello\\n\", nil", req.Parts, req.N(), req.Err)
	}
	checkStats(t, p, pipe.Stats{Enqueued: 1, Delivered: 1})
	if pipe.CancelRead(req) {
		t.Fatal("CancelRead of a completed read = true; want false")
	}
}

// A write completes parked reads from the writer's own goroutine, before
// Write returns, so a server needs no extra goroutine to deliver them.
func TestParkedReadCompletedBeforeWriteReturns(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	done := make(readDone, 1)
	parkRead(t, r, 100, done)
	write(t, w, "x\n")
	select {
	case <-done:
	default:
		t.Fatal("Write returned before completing the parked read")
	}
}

func TestParkedReadsServedInOrder(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w := p.NewWriter()
	done := make(readDone, 3)
	var reqs []*pipe.ReadRequest
	for range 3 {
		reqs = append(reqs, parkRead(t, p.NewReader(), 100, done))
	}
	write(t, w, "first\n")
	if got := wait(t, done, "a parked read"); got != reqs[0] {
		t.Fatal("the first message went to a later read; want the longest-waiting one")
	}
	none(t, done, "a second read for one message")
	write(t, w, "second\nthird\nfourth\n")
	for i, want := range []string{"second\n", "third\n"} {
		req := wait(t, done, "a parked read")
		if req != reqs[i+1] || string(bytes.Join(req.Parts, nil)) != want {
			t.Fatalf("completion %d: request %d got %q; want request %d with %q",
				i+1, slices.Index(reqs, req), req.Parts, i+1, want)
		}
	}
	checkStats(t, p, pipe.Stats{Messages: 1, Bytes: 7, Enqueued: 4, Delivered: 3})
}

// A parked read with a small buffer gets the start of the message; the
// rest is its reader's.
func TestParkedReadPiece(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r, other := p.NewWriter(), p.NewReader(), p.NewReader()
	done := make(readDone, 2)
	req := parkRead(t, r, 3, done)
	req2 := parkRead(t, other, 100, done)
	write(t, w, "abcdefg\nnext\n")
	wait(t, done, "the first parked read")
	wait(t, done, "the second parked read")
	if got := string(bytes.Join(req.Parts, nil)); got != "abc" {
		t.Fatalf("parked read of 3 bytes = %q; want \"abc\"", got)
	}
	if got := string(bytes.Join(req2.Parts, nil)); got != "next\n" {
		t.Fatalf("second parked read = %q; want \"next\\n\"", got)
	}
	mustRead(t, r, 100, "defg\n")
}

// A request may be reused once completed; its Parts buffer is reused too.
func TestReadRequestReuse(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	done := make(readDone, 1)
	req := new(pipe.ReadRequest)
	for _, msg := range []string{"one\n", "two\n", "three\n"} {
		if _, err := r.Read(nil, 100, false, false, req, done); !errors.Is(err, pipe.ErrParked) {
			t.Fatalf("Read = %v; want ErrParked", err)
		}
		write(t, w, msg)
		wait(t, done, "the parked read")
		if got := string(bytes.Join(req.Parts, nil)); got != msg || req.Err != nil {
			t.Fatalf("reused request read %q, %v; want %q", got, req.Err, msg)
		}
	}
}

func TestCancelRead(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	if pipe.CancelRead(new(pipe.ReadRequest)) {
		t.Fatal("CancelRead of a request never parked = true; want false")
	}
	done := make(readDone, 2)
	a := parkRead(t, r, 100, done)
	b := parkRead(t, p.NewReader(), 100, done)
	if !pipe.CancelRead(a) {
		t.Fatal("CancelRead of a parked read = false; want true")
	}
	if pipe.CancelRead(a) {
		t.Fatal("second CancelRead = true; want false")
	}
	checkStats(t, p, pipe.Stats{Readers: 1})
	write(t, w, "msg\n")
	if got := wait(t, done, "the remaining parked read"); got != b {
		t.Fatal("a cancelled read was completed")
	}
	none(t, done, "the cancelled read")
	if len(a.Parts) != 0 || a.Err != nil {
		t.Fatalf("cancelled read holds %q, %v; want nothing", a.Parts, a.Err)
	}
	checkStats(t, p, pipe.Stats{Enqueued: 1, Delivered: 1})
}

// Cancelling a read consumes nothing: the message that comes next stays
// queued for the next read.
func TestCancelReadConsumesNothing(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	done := make(readDone, 1)
	req := parkRead(t, r, 2, done)
	pipe.CancelRead(req)
	write(t, w, "abc\n")
	none(t, done, "the cancelled read")
	checkStats(t, p, pipe.Stats{Messages: 1, Bytes: 4, Enqueued: 1})
	mustRead(t, r, 100, "abc\n")
}

func TestParkedWriteCompletedByRead(t *testing.T) {
	p := newPipe(t, lines(10, 10))
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "12345678\n")
	done := make(writeDone, 1)
	req := parkWrite(t, w, "abc\n", done)
	checkStats(t, p, pipe.Stats{Messages: 1, Bytes: 9, Enqueued: 1, Writers: 1})
	// A piece of the message frees no room: it leaves at its last byte.
	mustRead(t, r, 4, "1234")
	none(t, done, "a write with no room")
	mustRead(t, r, 100, "5678\n")
	if got := wait(t, done, "the parked write"); got != req || req.N != 4 || req.Err != nil {
		t.Fatalf("parked write = %d, %v; want 4, nil", req.N, req.Err)
	}
	mustRead(t, r, 100, "abc\n")
	if pipe.CancelWrite(req) {
		t.Fatal("CancelWrite of a completed write = true; want false")
	}
}

// Parked writes go in strictly in arrival order, even when a later one
// would fit sooner.
func TestParkedWritesInOrder(t *testing.T) {
	p := newPipe(t, lines(10, 10))
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "1\n2\n3\n4\n5\n")
	done := make(writeDone, 3)
	big := parkWrite(t, w, "abcdefgh\n", done)
	small := parkWrite(t, p.NewWriter(), "x\n", done)
	// A new write, even a non-blocking one that would fit, queues behind.
	mustRead(t, r, 100, "1\n")
	if n, err := p.NewWriter().Write([]byte("y\n"), true, nil, nil); !errors.Is(err, pipe.ErrWouldBlock) {
		t.Fatalf("Write with writers parked = %d, %v; want ErrWouldBlock", n, err)
	}
	none(t, done, "a parked write")
	mustRead(t, r, 100, "2\n")
	mustRead(t, r, 100, "3\n")
	mustRead(t, r, 100, "4\n")
	none(t, done, "a parked write with no room")
	mustRead(t, r, 100, "5\n")
	if got := wait(t, done, "the first parked write"); got != big {
		t.Fatal("the second parked write went in first")
	}
	none(t, done, "the second parked write, with no room left")
	mustRead(t, r, 100, "abcdefgh\n")
	if got := wait(t, done, "the second parked write"); got != small {
		t.Fatal("unexpected completion")
	}
	mustRead(t, r, 100, "x\n")
}

// Withdrawing the parked write at the head lets the ones behind it in.
func TestCancelWriteLetsNextIn(t *testing.T) {
	p := newPipe(t, packets(10, 10))
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "123456789")
	done := make(writeDone, 2)
	head := parkWrite(t, w, "12345", done)
	next := parkWrite(t, p.NewWriter(), "x", done)
	if !pipe.CancelWrite(head) {
		t.Fatal("CancelWrite of a parked write = false; want true")
	}
	if pipe.CancelWrite(head) {
		t.Fatal("second CancelWrite = true; want false")
	}
	if got := wait(t, done, "the write behind the cancelled one"); got != next || next.N != 1 || next.Err != nil {
		t.Fatalf("write behind the cancelled one = %d, %v; want 1, nil", next.N, next.Err)
	}
	none(t, done, "the cancelled write")
	if head.N != 0 || head.Err != nil {
		t.Fatalf("cancelled write = %d, %v; want 0, nil", head.N, head.Err)
	}
	if got := drain(t, r); !slices.Equal(got, []string{"123456789", "x"}) {
		t.Fatalf("read %q; want [123456789 x]", got)
	}
}

func TestCancelWriteQueuesNothing(t *testing.T) {
	p := newPipe(t, lines(4, 4))
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "abc\n")
	done := make(writeDone, 1)
	req := parkWrite(t, w, "x\ny", done)
	if pipe.CancelWrite(new(pipe.WriteRequest)) {
		t.Fatal("CancelWrite of a request never parked = true; want false")
	}
	if !pipe.CancelWrite(req) {
		t.Fatal("CancelWrite = false; want true")
	}
	mustRead(t, r, 100, "abc\n")
	none(t, done, "the cancelled write")
	w.Close() // the cancelled write left no tail
	mustBeEmpty(t, r)
	checkStats(t, p, pipe.Stats{Enqueued: 1, Delivered: 1})
}

// A parked write is measured again when it gets its turn: a new limit
// refuses it with ErrTooBig.
func TestParkedWriteTooBigAfterSettingsChange(t *testing.T) {
	p := newPipe(t, lines(10, 10))
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "12345678\n")
	done := make(writeDone, 2)
	long := parkWrite(t, w, "abcdefg\n", done)
	short := parkWrite(t, p.NewWriter(), "ab\n", done)
	if err := p.Control("maxmessage 4"); err != nil {
		t.Fatal(err)
	}
	mustRead(t, r, 100, "12345678\n")
	if got := wait(t, done, "the long parked write"); got != long || long.N != 0 || !errors.Is(long.Err, pipe.ErrTooBig) {
		t.Fatalf("long parked write = %d, %v; want 0, ErrTooBig", long.N, long.Err)
	}
	if got := wait(t, done, "the short parked write"); got != short || short.N != 3 || short.Err != nil {
		t.Fatalf("short parked write = %d, %v; want 3, nil", short.N, short.Err)
	}
	if got := drain(t, r); !slices.Equal(got, []string{"ab\n"}) {
		t.Fatalf("read %q; want [ab\\n]", got)
	}
}

// Room made by the settings or by clear lets parked writers in at once.
func TestRoomFromControl(t *testing.T) {
	for _, cmd := range []string{"capacity 20", "clear"} {
		t.Run(cmd, func(t *testing.T) {
			p := newPipe(t, lines(10, 10))
			w := p.NewWriter()
			write(t, w, "12345678\n")
			done := make(writeDone, 1)
			req := parkWrite(t, w, "abc\n", done)
			if err := p.Control(cmd); err != nil {
				t.Fatal(err)
			}
			if wait(t, done, "the parked write"); req.N != 4 || req.Err != nil {
				t.Fatalf("parked write after %q = %d, %v; want 4, nil", cmd, req.N, req.Err)
			}
		})
	}
}

// A write larger than the capacity waits for the queue to empty, then goes
// in whole.
func TestParkedOversizeWrite(t *testing.T) {
	p := newPipe(t, lines(10, 10))
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "a\n")
	done := make(writeDone, 1)
	big := "123456789\n123456789\n"
	req := parkWrite(t, w, big, done)
	mustRead(t, r, 100, "a\n")
	if wait(t, done, "the oversize write"); req.N != len(big) || req.Err != nil {
		t.Fatalf("oversize write = %d, %v; want %d, nil", req.N, req.Err, len(big))
	}
	checkStats(t, p, pipe.Stats{Messages: 2, Bytes: 20, Enqueued: 3, Delivered: 1})
}

func TestPipeCloseEndsParked(t *testing.T) {
	full := newPipe(t, lines(4, 4))
	w := full.NewWriter()
	write(t, w, "abc\n")
	wdone := make(writeDone, 2)
	wreqs := []*pipe.WriteRequest{parkWrite(t, w, "x\n", wdone), parkWrite(t, full.NewWriter(), "y\n", wdone)}
	empty := newPipe(t, pipe.DefaultSettings())
	rdone := make(readDone, 2)
	rreqs := []*pipe.ReadRequest{parkRead(t, empty.NewReader(), 10, rdone), parkRead(t, empty.NewReader(), 10, rdone)}

	full.Close()
	empty.Close()
	for range wreqs {
		req := wait(t, wdone, "a parked write at Close")
		if req.N != 0 || !errors.Is(req.Err, pipe.ErrClosed) {
			t.Fatalf("parked write at Close = %d, %v; want 0, ErrClosed", req.N, req.Err)
		}
		if pipe.CancelWrite(req) {
			t.Fatal("CancelWrite after Close = true; want false")
		}
	}
	for range rreqs {
		req := wait(t, rdone, "a parked read at Close")
		if len(req.Parts) != 0 || !errors.Is(req.Err, pipe.ErrClosed) {
			t.Fatalf("parked read at Close = %q, %v; want nothing, ErrClosed", req.Parts, req.Err)
		}
		if pipe.CancelRead(req) {
			t.Fatal("CancelRead after Close = true; want false")
		}
	}
	checkStats(t, full, pipe.Stats{Enqueued: 1, Closed: true})
	checkStats(t, empty, pipe.Stats{Closed: true})
}

func TestReadBlocking(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	type result struct {
		b   []byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		b, err := r.ReadBlocking(context.Background(), 4)
		res <- result{b, err}
	}()
	waitFor(t, "ReadBlocking to park", func() bool { return p.Stats().Readers == 1 })
	write(t, w, "abcdef\n")
	if got := wait(t, res, "ReadBlocking"); string(got.b) != "abcd" || got.err != nil {
		t.Fatalf("ReadBlocking(4) = %q, %v; want \"abcd\", nil", got.b, got.err)
	}
	// The rest is there at once, without parking.
	if b, err := r.ReadBlocking(context.Background(), 100); string(b) != "ef\n" || err != nil {
		t.Fatalf("ReadBlocking = %q, %v; want \"ef\\n\", nil", b, err)
	}
}

func TestReadBlockingContext(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b, err := r.ReadBlocking(ctx, 100); b != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadBlocking with a cancelled context = %q, %v; want nil, context.Canceled", b, err)
	}
	checkStats(t, p, pipe.Stats{})
	// A message waiting is read even when the context is done.
	write(t, w, "x\n")
	if b, err := r.ReadBlocking(ctx, 100); string(b) != "x\n" || err != nil {
		t.Fatalf("ReadBlocking with a message waiting = %q, %v; want \"x\\n\", nil", b, err)
	}
	p.Close()
	if b, err := r.ReadBlocking(context.Background(), 100); b != nil || !errors.Is(err, pipe.ErrClosed) {
		t.Fatalf("ReadBlocking after Close = %q, %v; want nil, ErrClosed", b, err)
	}
}

func TestWriteBlocking(t *testing.T) {
	p := newPipe(t, lines(4, 4))
	w, r := p.NewWriter(), p.NewReader()
	if n, err := w.WriteBlocking(context.Background(), []byte("abc\n")); n != 4 || err != nil {
		t.Fatalf("WriteBlocking with room = %d, %v; want 4, nil", n, err)
	}
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := w.WriteBlocking(context.Background(), []byte("de\n"))
		res <- result{n, err}
	}()
	waitFor(t, "WriteBlocking to park", func() bool { return p.Stats().Writers == 1 })
	mustRead(t, r, 100, "abc\n")
	if got := wait(t, res, "WriteBlocking"); got.n != 3 || got.err != nil {
		t.Fatalf("WriteBlocking = %d, %v; want 3, nil", got.n, got.err)
	}
	mustRead(t, r, 100, "de\n")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	write(t, w, "abc\n")
	if n, err := w.WriteBlocking(ctx, []byte("x\n")); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteBlocking with a cancelled context = %d, %v; want 0, context.Canceled", n, err)
	}
	if n, err := w.WriteBlocking(ctx, []byte("toolong\n")); n != 0 || !errors.Is(err, pipe.ErrTooBig) {
		t.Fatalf("WriteBlocking of a long line = %d, %v; want 0, ErrTooBig", n, err)
	}
	checkStats(t, p, pipe.Stats{Messages: 1, Bytes: 4, Enqueued: 3, Delivered: 2})
	p.Close()
	if n, err := w.WriteBlocking(context.Background(), []byte("x\n")); n != 0 || !errors.Is(err, pipe.ErrClosed) {
		t.Fatalf("WriteBlocking after Close = %d, %v; want 0, ErrClosed", n, err)
	}
}

// One call may complete many requests and wake many watchers; all are
// delivered, in order.
func TestManyCompletionsAtOnce(t *testing.T) {
	const n = 10
	p := newPipe(t, pipe.DefaultSettings())
	w := p.NewWriter()
	done := make(readDone, n)
	var reqs []*pipe.ReadRequest
	var watchers []*watcher
	var all []byte
	for i := range n {
		reqs = append(reqs, parkRead(t, p.NewReader(), 100, done))
		wt := newWatcher()
		p.NewReader().PollRead(wt)
		watchers = append(watchers, wt)
		all = fmt.Appendf(all, "message %d\n", i)
	}
	// Two more lines than readers, so that the watchers see a message.
	write(t, w, string(all)+"extra\nextra\n")
	for i := range n {
		req := wait(t, done, "a parked read")
		if want := fmt.Sprintf("message %d\n", i); req != reqs[i] || string(bytes.Join(req.Parts, nil)) != want {
			t.Fatalf("completion %d: request %d with %q; want request %d with %q",
				i, slices.Index(reqs, req), req.Parts, i, want)
		}
	}
	for i, wt := range watchers {
		if !wt.woken() {
			t.Fatalf("watcher %d of %d not woken", i, n)
		}
	}

	// And many parked writes let in by one read.
	q := newPipe(t, lines(n, n))
	qw, qr := q.NewWriter(), q.NewReader()
	write(t, qw, strings.Repeat("x", n-1)+"\n")
	wdone := make(writeDone, n)
	var wreqs []*pipe.WriteRequest
	for range n {
		wreqs = append(wreqs, parkWrite(t, q.NewWriter(), "\n", wdone))
	}
	mustRead(t, qr, 100, strings.Repeat("x", n-1)+"\n")
	for i := range n {
		if got := wait(t, wdone, "a parked write"); got != wreqs[i] || got.N != 1 || got.Err != nil {
			t.Fatalf("completion %d: write %d = %d, %v; want write %d = 1, nil", i, slices.Index(wreqs, got), got.N, got.Err, i)
		}
	}
}
