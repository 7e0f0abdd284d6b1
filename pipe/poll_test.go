package pipe_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pipefs/pipe"
)

func TestPollRead(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r1, r2 := p.NewWriter(), p.NewReader(), p.NewReader()
	check := func(r *pipe.Reader, want pipe.Readiness, when string) {
		t.Helper()
		if got := r.PollRead(nil); got != want {
			t.Fatalf("PollRead %s = %+v; want %+v", when, got, want)
		}
	}
	check(r1, pipe.Readiness{}, "on an empty pipe")
	write(t, w, "abc")
	check(r1, pipe.Readiness{}, "with only a tail written")
	write(t, w, "def\n")
	check(r1, pipe.Readiness{Readable: true}, "with a message waiting")
	mustRead(t, r1, 2, "ab")
	check(r1, pipe.Readiness{Readable: true}, "by the reader of a partly read message")
	check(r2, pipe.Readiness{}, "by another reader while one reads the only message")
	mustRead(t, r1, 100, "cdef\n")
	check(r1, pipe.Readiness{}, "after the last message was read")
	p.Close()
	check(r1, pipe.Readiness{Readable: true, Closed: true}, "after Close")
}

func TestPollWrite(t *testing.T) {
	p := newPipe(t, lines(10, 10))
	w, r := p.NewWriter(), p.NewReader()
	check := func(want pipe.Readiness, when string) {
		t.Helper()
		if got := w.PollWrite(nil); got != want {
			t.Fatalf("PollWrite %s = %+v; want %+v", when, got, want)
		}
	}
	check(pipe.Readiness{Writable: true}, "on an empty pipe")
	write(t, w, "12345678\n")
	check(pipe.Readiness{Writable: true}, "with one byte free")
	write(t, w, "\n")
	check(pipe.Readiness{}, "when full")
	mustRead(t, r, 3, "123")
	check(pipe.Readiness{}, "after a piece was read")
	mustRead(t, r, 100, "45678\n")
	check(pipe.Readiness{Writable: true}, "after a message left")
	drain(t, r)
	write(t, w, "123456789\n123\n") // over capacity, let in on an empty queue
	check(pipe.Readiness{}, "over capacity")
	p.Close()
	check(pipe.Readiness{Writable: true, Closed: true}, "after Close")
}

// An armed watcher is woken when the pipe becomes readable after somebody
// saw it not readable, whatever made it so.
func TestReadWatcherWoken(t *testing.T) {
	tests := []struct {
		name  string
		setup func(p *pipe.Pipe, w *pipe.Writer) // leaves the pipe unreadable for a new reader
		event func(p *pipe.Pipe, w *pipe.Writer)
	}{
		{"write", nil, func(p *pipe.Pipe, w *pipe.Writer) { write(t, w, "x\n") }},
		{"write completing a tail", func(p *pipe.Pipe, w *pipe.Writer) { write(t, w, "ab") },
			func(p *pipe.Pipe, w *pipe.Writer) { write(t, w, "c\n") }},
		{"writer close flushing a tail", func(p *pipe.Pipe, w *pipe.Writer) { write(t, w, "ab") },
			func(p *pipe.Pipe, w *pipe.Writer) { w.Close() }},
		{"pipe close", nil, func(p *pipe.Pipe, w *pipe.Writer) { p.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipe(t, pipe.DefaultSettings())
			w, r := p.NewWriter(), p.NewReader()
			if tt.setup != nil {
				tt.setup(p, w)
			}
			wt := newWatcher()
			if rd := r.PollRead(wt); rd.Readable {
				t.Fatalf("PollRead before %s = %+v; want not readable", tt.name, rd)
			}
			tt.event(p, w)
			if !wt.woken() {
				t.Fatalf("watcher not woken by %s", tt.name)
			}
			if rd := r.PollRead(wt); !rd.Readable {
				t.Fatalf("PollRead after %s woke the watcher = %+v; want readable", tt.name, rd)
			}
		})
	}
}

// Readability that comes from inside the engine: a message put back by a
// closing reader, and a parked write let in by a read or a setting.
func TestReadWatcherWokenFromInside(t *testing.T) {
	t.Run("put back", func(t *testing.T) {
		p := newPipe(t, pipe.DefaultSettings())
		w, r1, r2 := p.NewWriter(), p.NewReader(), p.NewReader()
		write(t, w, "abc\n")
		mustRead(t, r1, 1, "a")
		wt := newWatcher()
		if r2.PollRead(wt).Readable {
			t.Fatal("another reader's partial message is readable; want not")
		}
		r1.Close()
		if !wt.woken() {
			t.Fatal("watcher not woken when a message was put back")
		}
		mustRead(t, r2, 100, "abc\n")
	})
	for _, event := range []string{"read", "capacity"} {
		t.Run("parked write let in by "+event, func(t *testing.T) {
			p := newPipe(t, lines(4, 4))
			w, r1, r2 := p.NewWriter(), p.NewReader(), p.NewReader()
			write(t, w, "abc\n")
			done := make(writeDone, 1)
			parkWrite(t, w, "x\n", done)
			mustRead(t, r1, 1, "a") // the queue is full and nothing is readable by r2
			wt := newWatcher()
			if r2.PollRead(wt).Readable {
				t.Fatal("PollRead = readable; want not")
			}
			if event == "read" {
				mustRead(t, r1, 100, "bc\n")
			} else if err := p.Control("capacity 6"); err != nil {
				t.Fatal(err)
			}
			wait(t, done, "the parked write")
			if !wt.woken() {
				t.Fatalf("watcher not woken when a parked write was let in by %s", event)
			}
			if !r2.PollRead(wt).Readable {
				t.Fatal("PollRead after the wake-up = not readable")
			}
		})
	}
}

// A non-blocking read that finds nothing counts as seeing the pipe not
// ready, just as a poll does.
func TestReadWouldBlockArmsWatcher(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "a\n")
	wt := newWatcher()
	if !r.PollRead(wt).Readable {
		t.Fatal("PollRead with a message = not readable")
	}
	mustRead(t, r, 100, "a\n")
	mustBeEmpty(t, r)
	wt.woken() // forget any wake-up so far
	write(t, w, "b\n")
	if !wt.woken() {
		t.Fatal("watcher not woken after a read saw the pipe empty and a message came")
	}
}

func TestWriteWatcherWoken(t *testing.T) {
	tests := []struct {
		name  string
		event func(t *testing.T, p *pipe.Pipe, r *pipe.Reader)
	}{
		{"read", func(t *testing.T, p *pipe.Pipe, r *pipe.Reader) { mustRead(t, r, 100, "1234\n") }},
		{"last piece read", func(t *testing.T, p *pipe.Pipe, r *pipe.Reader) {
			mustRead(t, r, 2, "12")
			mustRead(t, r, 100, "34\n")
		}},
		{"batch read", func(t *testing.T, p *pipe.Pipe, r *pipe.Reader) {
			if err := p.Control("batch on"); err != nil {
				t.Fatal(err)
			}
			mustRead(t, r, 100, "1234\n5678\n")
		}},
		{"clear", func(t *testing.T, p *pipe.Pipe, r *pipe.Reader) { p.Clear() }},
		{"capacity raised", func(t *testing.T, p *pipe.Pipe, r *pipe.Reader) {
			if err := p.Control("capacity 11"); err != nil {
				t.Fatal(err)
			}
		}},
		{"pipe close", func(t *testing.T, p *pipe.Pipe, r *pipe.Reader) { p.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipe(t, lines(10, 10))
			w, r := p.NewWriter(), p.NewReader()
			write(t, w, "1234\n5678\n")
			wt := newWatcher()
			if rd := w.PollWrite(wt); rd.Writable {
				t.Fatalf("PollWrite on a full pipe = %+v; want not writable", rd)
			}
			tt.event(t, p, r)
			if !wt.woken() {
				t.Fatalf("watcher not woken by %s", tt.name)
			}
			if rd := w.PollWrite(wt); !rd.Writable {
				t.Fatalf("PollWrite after %s woke the watcher = %+v; want writable", tt.name, rd)
			}
		})
	}
}

// Room can come from inside the engine: a message put back by a closing
// reader goes at once to a parked read, and the room it leaves must be
// announced too.
func TestWriteWatcherWokenByParkedRead(t *testing.T) {
	p := newPipe(t, lines(10, 10))
	w, r1, r2 := p.NewWriter(), p.NewReader(), p.NewReader()
	write(t, w, "123456789\n")
	mustRead(t, r1, 1, "1")
	done := make(readDone, 1)
	parkRead(t, r2, 100, done)
	wt := newWatcher()
	if w.PollWrite(wt).Writable {
		t.Fatal("PollWrite on a full pipe = writable")
	}
	r1.Close()
	wait(t, done, "the parked read")
	if !wt.woken() {
		t.Fatal("watcher not woken when a parked read took the put-back message")
	}
}

// A non-blocking write that finds no room counts as seeing the pipe not
// ready, even when a one-byte write would have fitted.
func TestWriteWouldBlockArmsWatcher(t *testing.T) {
	p := newPipe(t, lines(10, 10))
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "1234\n")
	wt := newWatcher()
	if !w.PollWrite(wt).Writable {
		t.Fatal("PollWrite with room = not writable")
	}
	wt.woken()
	if _, err := w.Write([]byte("abcdefgh\n"), true, nil, nil); !errors.Is(err, pipe.ErrWouldBlock) {
		t.Fatalf("Write over capacity = %v; want ErrWouldBlock", err)
	}
	mustRead(t, r, 100, "1234\n")
	if !wt.woken() {
		t.Fatal("watcher not woken after a write found no room and room appeared")
	}
}

func TestUnwatch(t *testing.T) {
	p := newPipe(t, lines(10, 10))
	w, r := p.NewWriter(), p.NewReader()
	rw, ww := newWatcher(), newWatcher()
	r.PollRead(rw)
	r.PollRead(rw) // arming twice wakes once
	p.Unwatch(rw)
	write(t, w, "123456789\n")
	w.PollWrite(ww)
	p.Unwatch(ww)
	p.Unwatch(ww)
	mustRead(t, r, 100, "123456789\n")
	p.Close()
	if rw.woken() || ww.woken() {
		t.Fatalf("an unwatched watcher was woken (read %v, write %v)", rw.n.Load(), ww.n.Load())
	}
}

func TestWatcherWokenOnce(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	wt := newWatcher()
	r.PollRead(wt)
	r.PollRead(wt)
	write(t, w, "x\n")
	if n := wt.n.Load(); n != 1 {
		t.Fatalf("watcher armed twice was woken %d times by one message; want 1", n)
	}
}

// Readers and writers driven only by non-blocking calls and poll-style
// watchers, as a FUSE server drives them: a lost wake-up shows as a
// reader or writer that waits forever.
func TestNoLostWakeups(t *testing.T) {
	const (
		writers   = 3
		readers   = 3
		perWriter = 2000
		msgLen    = 10 // fixed, so that room for a byte is room for a message
	)
	p := newPipe(t, lines(4*msgLen, msgLen))
	total := writers * perWriter
	got := make(chan string, total)
	var received atomic.Int64

	waitWake := func(wt *watcher, who string) bool {
		select {
		case <-wt.ch:
			return true
		case <-time.After(failAfter):
			t.Errorf("%s waited %v for a wake-up: lost wake-up", who, failAfter)
			return false
		}
	}

	var wg sync.WaitGroup
	for id := range writers {
		wg.Go(func() {
			w := p.NewWriter()
			defer w.Close()
			wt := newWatcher()
			defer p.Unwatch(wt)
			for i := range perWriter {
				msg := fmt.Appendf(nil, "%d %07d\n", id, i)
				for {
					_, err := w.Write(msg, true, nil, nil)
					if err == nil {
						break
					}
					if !errors.Is(err, pipe.ErrWouldBlock) {
						t.Errorf("writer %d: %v", id, err)
						return
					}
					if rd := w.PollWrite(wt); !rd.Writable && !waitWake(wt, fmt.Sprintf("writer %d", id)) {
						return
					}
				}
			}
		})
	}
	for id := range readers {
		wg.Go(func() {
			r := p.NewReader()
			wt := newWatcher()
			defer p.Unwatch(wt)
			var msg []byte
			for {
				rd := r.PollRead(wt)
				if rd.Closed {
					return
				}
				if !rd.Readable {
					if !waitWake(wt, fmt.Sprintf("reader %d", id)) {
						return
					}
					continue
				}
				// Small reads, so messages come in pieces too.
				parts, err := r.Read(nil, 3+id, false, true, nil, nil)
				if errors.Is(err, pipe.ErrWouldBlock) {
					continue // another reader took it
				}
				if err != nil {
					return // closed
				}
				for _, part := range parts {
					msg = append(msg, part...)
				}
				if len(msg) > 0 && msg[len(msg)-1] == '\n' {
					got <- string(msg)
					msg = nil
					if received.Add(1) == int64(total) {
						p.Close() // lets the other readers go
					}
				}
			}
		})
	}
	wg.Wait()
	close(got)
	checkExactlyOnce(t, got, writers, perWriter)
}

// checkExactlyOnce checks that the messages "W NNNNNNN\n" from each of
// writers writers, numbered 0..perWriter-1, all arrived once.
func checkExactlyOnce(t *testing.T, got <-chan string, writers, perWriter int) {
	t.Helper()
	seen := make(map[string]int)
	for m := range got {
		seen[m]++
	}
	missing, dup := 0, 0
	for id := range writers {
		for i := range perWriter {
			switch n := seen[fmt.Sprintf("%d %07d\n", id, i)]; {
			case n == 0:
				missing++
			case n > 1:
				dup++
			}
		}
	}
	if extra := len(seen) - (writers*perWriter - missing); missing > 0 || dup > 0 || extra > 0 {
		t.Fatalf("of %d messages: %d missing, %d delivered more than once, %d unexpected",
			writers*perWriter, missing, dup, extra)
	}
}
