package pipe_test

import (
	"bytes"
	"context"
	"testing"

	"pipefs/pipe"
)

var line64 = append(bytes.Repeat([]byte{'x'}, 63), '\n')

// One 64-byte line written and read back. The copy of the payload, which
// is the message's storage, should be the only allocation.
func BenchmarkWriteRead64(b *testing.B) {
	p := newPipe(b, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	dst := make([][]byte, 0, 4)
	b.SetBytes(int64(len(line64)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Write(line64, true, nil, nil); err != nil {
			b.Fatal(err)
		}
		var err error
		if dst, err = r.Read(dst[:0], 4096, false, true, nil, nil); err != nil || len(dst) != 1 {
			b.Fatalf("Read = %d parts, %v", len(dst), err)
		}
	}
}

// Same in packets mode.
func BenchmarkWriteRead64Packets(b *testing.B) {
	p := newPipe(b, pipe.Settings{Mode: pipe.Packets, Capacity: pipe.DefaultCapacity, MaxMessage: pipe.MaxPacket})
	w, r := p.NewWriter(), p.NewReader()
	dst := make([][]byte, 0, 4)
	b.SetBytes(int64(len(line64)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Write(line64, true, nil, nil); err != nil {
			b.Fatal(err)
		}
		var err error
		if dst, err = r.Read(dst[:0], 4096, false, true, nil, nil); err != nil || len(dst) != 1 {
			b.Fatalf("Read = %d parts, %v", len(dst), err)
		}
	}
}

type countReads struct{ n int }

func (c *countReads) ReadDone(*pipe.ReadRequest) { c.n++ }

// A read parks on an empty pipe and the next write completes it, from
// inside Write, through the notifier.
func BenchmarkParkedReadWakeup(b *testing.B) {
	p := newPipe(b, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	req := &pipe.ReadRequest{Parts: make([][]byte, 0, 4)}
	done := new(countReads)
	b.SetBytes(int64(len(line64)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Read(nil, 4096, false, false, req, done); err != pipe.ErrParked {
			b.Fatalf("Read = %v; want ErrParked", err)
		}
		if _, err := w.Write(line64, true, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	if done.n != b.N || req.N() != len(line64) {
		b.Fatalf("%d completions of %d reads, last of %d bytes", done.n, b.N, req.N())
	}
}

// A 128 KiB write of 2048 64-byte lines, read back by batch reads of up
// to 128 KiB.
func BenchmarkBatch128K(b *testing.B) {
	p := newPipe(b, pipe.Settings{Capacity: pipe.DefaultCapacity, MaxMessage: pipe.MaxPacket, Batch: true})
	w, r := p.NewWriter(), p.NewReader()
	data := bytes.Repeat(line64, 2048)
	dst := make([][]byte, 0, 16)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Write(data, true, nil, nil); err != nil {
			b.Fatal(err)
		}
		for n := 0; n < len(data); {
			var err error
			if dst, err = r.Read(dst[:0], 128<<10, false, true, nil, nil); err != nil {
				b.Fatal(err)
			}
			for _, part := range dst {
				n += len(part)
			}
		}
	}
}

// The same 2048 lines read one message per read, for comparison.
func BenchmarkNoBatch128K(b *testing.B) {
	p := newPipe(b, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	data := bytes.Repeat(line64, 2048)
	dst := make([][]byte, 0, 4)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Write(data, true, nil, nil); err != nil {
			b.Fatal(err)
		}
		for range 2048 {
			var err error
			if dst, err = r.Read(dst[:0], 128<<10, false, true, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// Writers and readers on other goroutines through the blocking wrappers,
// which park and wake each other.
func BenchmarkBlockingPingPong(b *testing.B) {
	p := newPipe(b, lines(256, 64))
	w, r := p.NewWriter(), p.NewReader()
	ctx := context.Background()
	b.SetBytes(int64(len(line64)))
	b.ReportAllocs()
	errc := make(chan error, 1)
	n := b.N
	go func() {
		for range n {
			if _, err := w.WriteBlocking(ctx, line64); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	b.ResetTimer()
	for range n {
		if _, err := r.ReadBlocking(ctx, 4096); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// The hot paths allocate only the payload copy: the bookkeeping of
// completions and wake-ups lives on the stack.
func TestHotPathAllocs(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	dst := make([][]byte, 0, 4)
	wt := newWatcher()
	r.PollRead(wt) // an armed watcher costs nothing either
	w.PollWrite(wt)
	req := &pipe.ReadRequest{Parts: make([][]byte, 0, 4)}
	done := new(countReads)
	tests := []struct {
		name   string
		allocs float64
		f      func()
	}{
		{"write and read", 1, func() {
			w.Write(line64, true, nil, nil)
			dst, _ = r.Read(dst[:0], 4096, false, true, nil, nil)
		}},
		{"parked read completed by a write", 1, func() {
			r.Read(nil, 4096, false, false, req, done)
			w.Write(line64, true, nil, nil)
		}},
		{"read of an empty pipe", 0, func() { r.Read(dst[:0], 4096, false, true, nil, nil) }},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(1000, tt.f); got != tt.allocs {
			t.Errorf("%s: %v allocations; want %v", tt.name, got, tt.allocs)
		}
	}
}
