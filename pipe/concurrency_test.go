package pipe_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pipefs/pipe"
)

// stream returns the messages of writer id, "ID NNNNNNN\n", ten bytes each.
func stream(id, n int) []byte {
	var b []byte
	for i := range n {
		b = fmt.Appendf(b, "%d %07d\n", id, i)
	}
	return b
}

// cut splits b into chunks of 1..max bytes, so that writes end anywhere:
// mid-line, at a line's end, or several lines on.
func cut(rng *rand.Rand, b []byte, max int) [][]byte {
	var chunks [][]byte
	for len(b) > 0 {
		n := min(len(b), 1+rng.IntN(max))
		chunks = append(chunks, b[:n])
		b = b[n:]
	}
	return chunks
}

// assembler rebuilds messages from the results of one reader's reads and
// checks what the engine promises about them.
type assembler struct {
	t       *testing.T
	who     string
	batch   bool
	buf     []byte
	lastSeq map[byte]int // per writer: a reader sees a writer's lines in order
	out     chan<- string
}

func (a *assembler) add(b []byte) (msgs int) {
	nl := bytes.Count(b, []byte("\n"))
	switch {
	case nl > 0 && b[len(b)-1] != '\n':
		a.t.Errorf("%s: read %q holds the start of a second message", a.who, b)
	case nl > 1 && (!a.batch || len(a.buf) > 0):
		a.t.Errorf("%s: read %q holds %d messages (batch %v, continuing %q)", a.who, b, nl, a.batch, a.buf)
	}
	a.buf = append(a.buf, b...)
	for {
		i := bytes.IndexByte(a.buf, '\n')
		if i < 0 {
			return msgs
		}
		m := string(a.buf[:i+1])
		a.buf = a.buf[i+1:]
		var id byte
		var seq int
		if _, err := fmt.Sscanf(m, "%c %d\n", &id, &seq); err != nil || len(m) != 10 {
			a.t.Errorf("%s: malformed message %q", a.who, m)
		} else if last, ok := a.lastSeq[id]; ok && seq <= last {
			a.t.Errorf("%s: message %q after seq %d of the same writer", a.who, m, last)
		}
		a.lastSeq[id] = seq
		a.out <- m
		msgs++
	}
}

// Many goroutines write and read with WriteBlocking and ReadBlocking, in
// writes cut anywhere and reads of any size, while the settings change
// under them: every message arrives exactly once, whole, and each reader
// sees each writer's messages in order.
func TestConcurrentBlocking(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			const writers, readers, perWriter = 4, 4, 1500
			p := newPipe(t, pipe.Settings{Capacity: 32, MaxMessage: 16, Batch: batch})
			total := writers * perWriter
			got := make(chan string, 2*total) // room for duplicates, to report them
			var received atomic.Int64
			ctx := context.Background()

			var wg sync.WaitGroup
			for id := range writers {
				wg.Go(func() {
					w := p.NewWriter()
					defer w.Close()
					rng := rand.New(rand.NewPCG(uint64(id), 1))
					for _, chunk := range cut(rng, stream(id, perWriter), 35) {
						if n, err := w.WriteBlocking(ctx, chunk); n != len(chunk) || err != nil {
							t.Errorf("writer %d: WriteBlocking(%q) = %d, %v", id, chunk, n, err)
							return
						}
					}
				})
			}
			for id := range readers {
				wg.Go(func() {
					r := p.NewReader()
					defer r.Close()
					rng := rand.New(rand.NewPCG(uint64(id), 2))
					a := &assembler{t: t, who: fmt.Sprintf("reader %d", id), batch: batch, lastSeq: map[byte]int{}, out: got}
					for {
						b, err := r.ReadBlocking(ctx, 1+rng.IntN(40))
						if errors.Is(err, pipe.ErrClosed) {
							return
						}
						if err != nil || len(b) == 0 {
							t.Errorf("reader %d: ReadBlocking = %q, %v", id, b, err)
							return
						}
						if n := a.add(b); n > 0 && received.Add(int64(n)) == int64(total) {
							p.Close()
						}
					}
				})
			}
			stop := make(chan struct{})
			var ctl sync.WaitGroup
			ctl.Go(func() {
				cmds := []string{"capacity 16", "capacity 64", "capacity 1K", "capacity 32"}
				if batch {
					cmds = append(cmds, "batch off", "batch on")
				}
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if err := p.Control(cmds[i%len(cmds)]); err != nil {
						t.Errorf("Control(%q): %v", cmds[i%len(cmds)], err)
					}
				}
			})
			wg.Wait()
			close(stop)
			ctl.Wait()
			close(got)
			checkExactlyOnce(t, got, writers, perWriter)
			if s := p.Stats(); s.Enqueued != uint64(total) || s.Delivered != uint64(total) {
				t.Fatalf("Stats = %+v; want %d enqueued and delivered", s, total)
			}
		})
	}
}

// event is a completion handed to an event loop by a notifier.
type event struct {
	r *pipe.ReadRequest
	w *pipe.WriteRequest
}

type loopNotifier chan event

func (c loopNotifier) ReadDone(r *pipe.ReadRequest)   { c <- event{r: r} }
func (c loopNotifier) WriteDone(w *pipe.WriteRequest) { c <- event{w: w} }

// A few event loops each drive several readers and writers with parked
// requests, without a goroutine per request, as the FUSE server does.
// Completions arrive from whichever loop made them ready.
func TestConcurrentParkedRequests(t *testing.T) {
	const loops, readersPer, writersPer, perWriter = 3, 3, 2, 800
	p := newPipe(t, lines(40, 10))
	total := loops * writersPer * perWriter
	got := make(chan string, 2*total)
	var received atomic.Int64

	var wg sync.WaitGroup
	for l := range loops {
		wg.Go(func() {
			// Each request has at most one completion pending.
			events := make(loopNotifier, readersPer+writersPer)
			type rstate struct {
				r   *pipe.Reader
				req pipe.ReadRequest
				a   *assembler
				max int
			}
			type wstate struct {
				w    *pipe.Writer
				req  pipe.WriteRequest
				msgs [][]byte
			}
			rs := make([]*rstate, readersPer)
			ws := make([]*wstate, writersPer)
			byReq := map[any]int{}
			live := readersPer + writersPer

			// consume handles a read's result; it reports whether to
			// read again.
			consume := func(i int, parts [][]byte, err error) bool {
				if errors.Is(err, pipe.ErrClosed) {
					live--
					return false
				}
				if err != nil {
					t.Errorf("loop %d reader %d: %v", l, i, err)
					live--
					return false
				}
				if n := rs[i].a.add(bytes.Join(parts, nil)); n > 0 && received.Add(int64(n)) == int64(total) {
					p.Close()
				}
				return true
			}
			// read issues reads for reader i until one parks.
			read := func(i int) {
				s := rs[i]
				for {
					parts, err := s.r.Read(s.req.Parts[:0], s.max, false, false, &s.req, events)
					if errors.Is(err, pipe.ErrParked) || !consume(i, parts, err) {
						return
					}
				}
			}
			// write issues writer i's next writes until one parks.
			write := func(i int) {
				s := ws[i]
				for len(s.msgs) > 0 {
					n, err := s.w.Write(s.msgs[0], false, &s.req, events)
					if errors.Is(err, pipe.ErrParked) {
						return
					}
					if err != nil || n != len(s.msgs[0]) {
						t.Errorf("loop %d writer %d: Write = %d, %v", l, i, n, err)
						break
					}
					s.msgs = s.msgs[1:]
				}
				s.w.Close()
				live--
			}

			for i := range rs {
				rs[i] = &rstate{r: p.NewReader(), max: 4 + 3*i,
					a: &assembler{t: t, who: fmt.Sprintf("loop %d reader %d", l, i), lastSeq: map[byte]int{}, out: got}}
				byReq[&rs[i].req] = i
			}
			for i := range ws {
				id := l*writersPer + i
				rng := rand.New(rand.NewPCG(uint64(id), 3))
				ws[i] = &wstate{w: p.NewWriter(), msgs: cut(rng, stream(id, perWriter), 25)}
				byReq[&ws[i].req] = i
			}
			for i := range rs {
				read(i)
			}
			for i := range ws {
				write(i)
			}
			for live > 0 {
				var ev event
				select {
				case ev = <-events:
				case <-time.After(failAfter):
					t.Errorf("loop %d: no completion after %v with %d readers and writers live", l, failAfter, live)
					return
				}
				switch {
				case ev.r != nil:
					i := byReq[ev.r]
					if consume(i, ev.r.Parts, ev.r.Err) {
						read(i)
					}
				case ev.w != nil:
					i := byReq[ev.w]
					if s := ws[i]; ev.w.Err != nil || ev.w.N != len(s.msgs[0]) {
						t.Errorf("loop %d writer %d: parked write = %d, %v", l, i, ev.w.N, ev.w.Err)
						s.msgs = nil
					} else {
						s.msgs = s.msgs[1:]
					}
					write(i)
				}
			}
		})
	}
	wg.Wait()
	close(got)
	checkExactlyOnce(t, got, loops*writersPer, perWriter)
}

var spun atomic.Int64

// spin busies the CPU for a while, so that two goroutines racing on two
// CPUs meet at varied points.
func spin(n int) {
	for range n {
		spun.Add(1)
	}
}

// CancelRead racing with a write either withdraws the read with nothing
// consumed, or loses and the read gets the message; never both, never
// neither.
func TestCancelReadRace(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	cancelled := 0
	const rounds = 3000
	for i := range rounds {
		msg := fmt.Sprintf("m%d\n", i)
		done := make(readDone, 1)
		req := parkRead(t, r, 100, done)
		ready, wrote := make(chan struct{}), make(chan error)
		go func() {
			close(ready)
			spin(i % 7 * 300)
			_, err := w.Write([]byte(msg), true, nil, nil)
			wrote <- err
		}()
		<-ready
		spin(i % 11 * 50) // vary who gets there first
		ok := pipe.CancelRead(req)
		if err := <-wrote; err != nil {
			t.Fatalf("round %d: Write: %v", i, err)
		}
		if ok {
			cancelled++
			none(t, done, "a cancelled read")
			mustRead(t, r, 100, msg)
		} else {
			wait(t, done, "a read that CancelRead did not withdraw")
			if got := string(bytes.Join(req.Parts, nil)); got != msg || req.Err != nil {
				t.Fatalf("round %d: read that lost the race = %q, %v; want %q", i, got, req.Err, msg)
			}
			mustBeEmpty(t, r)
		}
	}
	checkStats(t, p, pipe.Stats{Enqueued: rounds, Delivered: rounds})
	t.Logf("%d of %d reads cancelled", cancelled, rounds)
}

// Several parked readers, some cancelled while writes land: each message
// goes to exactly one reader.
func TestCancelReadRaceMany(t *testing.T) {
	const rounds, parked = 500, 6
	p := newPipe(t, pipe.DefaultSettings())
	w := p.NewWriter()
	for round := range rounds {
		done := make(readDone, parked)
		reqs := make([]*pipe.ReadRequest, parked)
		for i := range reqs {
			reqs[i] = parkRead(t, p.NewReader(), 100, done)
		}
		wrote := make(chan error)
		go func() {
			for i := range parked / 2 {
				if _, err := w.Write(fmt.Appendf(nil, "%d %07d\n", round%10, i), true, nil, nil); err != nil {
					wrote <- err
					return
				}
			}
			wrote <- nil
		}()
		cancelled := make([]bool, parked)
		for i := 0; i < parked; i += 2 {
			cancelled[i] = pipe.CancelRead(reqs[i])
		}
		if err := <-wrote; err != nil {
			t.Fatalf("round %d: Write: %v", round, err)
		}
		// Withdraw whatever is still parked, then count.
		for i := range reqs {
			if pipe.CancelRead(reqs[i]) {
				cancelled[i] = true
			}
		}
		got := map[string]int{}
		for i, req := range reqs {
			if !cancelled[i] {
				req = wait(t, done, "a read that was not cancelled")
				got[string(bytes.Join(req.Parts, nil))]++
			}
		}
		none(t, done, "a cancelled read")
		for _, m := range drain(t, p.NewReader()) {
			got[m]++
		}
		for i := range parked / 2 {
			if m := fmt.Sprintf("%d %07d\n", round%10, i); got[m] != 1 {
				t.Fatalf("round %d: message %q delivered %d times; want once (all: %v)", round, m, got[m], got)
			}
		}
		if len(got) != parked/2 {
			t.Fatalf("round %d: got %v; want %d messages", round, got, parked/2)
		}
	}
}

// CancelWrite racing with a read that makes room: the write is either
// withdrawn with nothing queued, or completed; never both.
func TestCancelWriteRace(t *testing.T) {
	p := newPipe(t, lines(10, 10))
	w, r := p.NewWriter(), p.NewReader()
	cancelled := 0
	const rounds = 3000
	for i := range rounds {
		write(t, w, "123456789\n")
		msg := fmt.Sprintf("%d\n", i%10)
		done := make(writeDone, 1)
		req := parkWrite(t, w, msg, done)
		ready, got := make(chan struct{}), make(chan string)
		go func() {
			close(ready)
			spin(i % 7 * 300)
			s, err := read(r, 100)
			got <- fmt.Sprint(s, err)
		}()
		<-ready
		spin(i % 11 * 50)
		ok := pipe.CancelWrite(req)
		if got := <-got; got != "123456789\n<nil>" {
			t.Fatalf("round %d: Read = %q; want the full pipe's message", i, got)
		}
		if ok {
			cancelled++
			none(t, done, "a cancelled write")
			mustBeEmpty(t, r)
		} else {
			wait(t, done, "a write that CancelWrite did not withdraw")
			if req.N != len(msg) || req.Err != nil {
				t.Fatalf("round %d: write that lost the race = %d, %v", i, req.N, req.Err)
			}
			mustRead(t, r, 100, msg)
		}
	}
	t.Logf("%d of %d writes cancelled", cancelled, rounds)
}

// ReadBlocking's context ending as a message arrives: the caller gets the
// message, or the context's error and the message stays queued.
func TestReadBlockingContextRace(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	for i := range 1000 {
		msg := fmt.Sprintf("m%d\n", i)
		ctx, cancel := context.WithCancel(context.Background())
		type result struct {
			b   []byte
			err error
		}
		res := make(chan result, 1)
		go func() {
			b, err := r.ReadBlocking(ctx, 100)
			res <- result{b, err}
		}()
		waitFor(t, "ReadBlocking to park", func() bool { return p.Stats().Readers == 1 })
		go cancel()
		write(t, w, msg)
		got := wait(t, res, "ReadBlocking")
		switch {
		case got.err == nil && string(got.b) == msg:
			mustBeEmpty(t, r)
		case errors.Is(got.err, context.Canceled) && got.b == nil:
			mustRead(t, r, 100, msg)
		default:
			t.Fatalf("round %d: ReadBlocking = %q, %v; want %q or context.Canceled", i, got.b, got.err, msg)
		}
		cancel()
	}
}

// Pipe.Close racing with parked and new reads and writes: every request
// ends, with its result or ErrClosed, and nothing is delivered twice.
func TestCloseRace(t *testing.T) {
	for range 200 {
		p := newPipe(t, lines(20, 10))
		var wg sync.WaitGroup
		var delivered atomic.Int64
		for id := range 3 {
			wg.Go(func() {
				w := p.NewWriter()
				for i := 0; ; i++ {
					if _, err := w.WriteBlocking(context.Background(), fmt.Appendf(nil, "%d %07d\n", id, i)); err != nil {
						if !errors.Is(err, pipe.ErrClosed) {
							t.Errorf("WriteBlocking: %v", err)
						}
						return
					}
				}
			})
			wg.Go(func() {
				r := p.NewReader()
				for {
					b, err := r.ReadBlocking(context.Background(), 100)
					if err != nil {
						if !errors.Is(err, pipe.ErrClosed) {
							t.Errorf("ReadBlocking: %v", err)
						}
						return
					}
					if len(b) != 10 {
						t.Errorf("ReadBlocking = %q; want one 10-byte message", b)
					}
					if delivered.Add(1) == 50 {
						p.Close()
					}
				}
			})
		}
		wg.Wait()
		if s := p.Stats(); !s.Closed || s.Readers != 0 || s.Writers != 0 || s.Delivered != uint64(delivered.Load()) {
			t.Fatalf("Stats after Close = %+v; want closed, none parked, %d delivered", s, delivered.Load())
		}
	}
}
