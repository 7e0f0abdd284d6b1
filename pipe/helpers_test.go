package pipe_test

import (
	"bytes"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"pipefs/pipe"
)

// failAfter bounds every wait in these tests. Nothing sleeps to let
// something happen; a wait that reaches it means a lost wake-up or a
// deadlock, and the test says which wait it was.
const failAfter = 10 * time.Second

// lines returns settings for lines mode with the given sizes.
func lines(capacity, maxMessage int64) pipe.Settings {
	return pipe.Settings{Mode: pipe.Lines, Capacity: capacity, MaxMessage: maxMessage}
}

// packets returns settings for packets mode with the given sizes.
func packets(capacity, maxMessage int64) pipe.Settings {
	return pipe.Settings{Mode: pipe.Packets, Capacity: capacity, MaxMessage: maxMessage}
}

func newPipe(t testing.TB, s pipe.Settings) *pipe.Pipe {
	t.Helper()
	p, err := pipe.New("test", s)
	if err != nil {
		t.Fatalf("New(%+v): %v", s, err)
	}
	t.Cleanup(p.Close)
	return p
}

// write makes a non-blocking write that must be accepted whole.
func write(t testing.TB, w *pipe.Writer, data string) {
	t.Helper()
	n, err := w.Write([]byte(data), true, nil, nil)
	if err != nil || n != len(data) {
		t.Fatalf("Write(%q) = %d, %v; want %d, nil", data, n, err, len(data))
	}
}

// read makes one non-blocking read of up to max bytes and returns the bytes.
func read(r *pipe.Reader, max int) (string, error) {
	parts, err := r.Read(nil, max, false, true, nil, nil)
	return string(bytes.Join(parts, nil)), err
}

// mustRead makes a non-blocking read that must return want.
func mustRead(t testing.TB, r *pipe.Reader, max int, want string) {
	t.Helper()
	got, err := read(r, max)
	if err != nil || got != want {
		t.Fatalf("Read(max %d) = %q, %v; want %q, nil", max, got, err, want)
	}
}

// mustBeEmpty checks that a non-blocking read finds nothing.
func mustBeEmpty(t testing.TB, r *pipe.Reader) {
	t.Helper()
	if got, err := read(r, 1<<20); !errors.Is(err, pipe.ErrWouldBlock) {
		t.Fatalf("Read on an empty pipe = %q, %v; want ErrWouldBlock", got, err)
	}
}

// drain reads whole messages with a large buffer until the pipe is empty.
func drain(t testing.TB, r *pipe.Reader) []string {
	t.Helper()
	var msgs []string
	for {
		got, err := read(r, 1<<30)
		if errors.Is(err, pipe.ErrWouldBlock) {
			return msgs
		}
		if err != nil {
			t.Fatalf("Read while draining: %v", err)
		}
		msgs = append(msgs, got)
	}
}

// readDone is a ReadNotifier that hands completed requests to a channel.
type readDone chan *pipe.ReadRequest

func (c readDone) ReadDone(r *pipe.ReadRequest) { c <- r }

// writeDone is a WriteNotifier that hands completed requests to a channel.
type writeDone chan *pipe.WriteRequest

func (c writeDone) WriteDone(w *pipe.WriteRequest) { c <- w }

// wait returns the next completion, failing the test if none comes.
func wait[T any](t testing.TB, c chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(failAfter):
		t.Fatalf("no completion of %s after %v", what, failAfter)
		panic("unreachable")
	}
}

// none checks that no completion is pending on c.
func none[T any](t testing.TB, c chan T, what string) {
	t.Helper()
	select {
	case v := <-c:
		t.Fatalf("%s completed (%v); want it still parked", what, v)
	default:
	}
}

// parkRead parks a read of up to max bytes that must not complete at once.
func parkRead(t testing.TB, r *pipe.Reader, max int, done readDone) *pipe.ReadRequest {
	t.Helper()
	req := new(pipe.ReadRequest)
	parts, err := r.Read(nil, max, false, false, req, done)
	if !errors.Is(err, pipe.ErrParked) {
		t.Fatalf("blocking Read = %q, %v; want ErrParked", bytes.Join(parts, nil), err)
	}
	return req
}

// parkWrite parks a write that must not complete at once.
func parkWrite(t testing.TB, w *pipe.Writer, data string, done writeDone) *pipe.WriteRequest {
	t.Helper()
	req := new(pipe.WriteRequest)
	n, err := w.Write([]byte(data), false, req, done)
	if !errors.Is(err, pipe.ErrParked) {
		t.Fatalf("blocking Write(%q) = %d, %v; want ErrParked", data, n, err)
	}
	return req
}

// watcher counts its wake-ups and keeps one pending signal, so a wake-up
// that lands between a poll and the wait is not lost.
type watcher struct {
	n  atomic.Int64
	ch chan struct{}
}

func newWatcher() *watcher { return &watcher{ch: make(chan struct{}, 1)} }

func (w *watcher) Wake() {
	w.n.Add(1)
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// woken reports whether Wake was called since the last call to woken.
func (w *watcher) woken() bool {
	select {
	case <-w.ch:
		return true
	default:
		return false
	}
}

// waitFor spins until cond holds, for state that a goroutine reaches
// without telling anyone (such as a ReadBlocking call that has parked).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %v", what, failAfter)
		}
		runtime.Gosched()
	}
}

// checkStats compares the counters of a snapshot, ignoring the settings.
func checkStats(t testing.TB, p *pipe.Pipe, want pipe.Stats) {
	t.Helper()
	got := p.Stats()
	got.Settings, want.Settings = pipe.Settings{}, pipe.Settings{}
	if got != want {
		t.Fatalf("Stats:\n got %+v\nwant %+v", got, want)
	}
}
