package pipe_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"pipefs/pipe"
)

// A read never returns bytes of two messages; a message larger than the
// buffer comes in pieces to the same reader, and leaves the queue only when
// its last byte is read.
func TestReadPieces(t *testing.T) {
	tests := []struct {
		name  string
		msgs  []string
		maxes []int
		want  []string
	}{
		{"whole messages", []string{"ab\n", "cd\n"}, []int{100, 100}, []string{"ab\n", "cd\n"}},
		{"exact fit", []string{"ab\n", "cd\n"}, []int{3, 3}, []string{"ab\n", "cd\n"}},
		{"no crossing", []string{"ab\n", "cd\n"}, []int{6, 6}, []string{"ab\n", "cd\n"}},
		{"pieces", []string{"abcdefg\n", "x\n"}, []int{3, 3, 3, 3}, []string{"abc", "def", "g\n", "x\n"}},
		{"piece then rest then next", []string{"abcdefg\n", "x\n"}, []int{5, 100, 100}, []string{"abcde", "fg\n", "x\n"}},
		{"one byte at a time", []string{"ab\n"}, []int{1, 1, 1}, []string{"a", "b", "\n"}},
		{"rest smaller than max", []string{"abcd\n", "efg\n"}, []int{2, 4, 4}, []string{"ab", "cd\n", "efg\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipe(t, pipe.DefaultSettings())
			w, r := p.NewWriter(), p.NewReader()
			for _, m := range tt.msgs {
				write(t, w, m)
			}
			var got []string
			for _, max := range tt.maxes {
				s, err := read(r, max)
				if err != nil {
					t.Fatalf("Read(max %d) after %q: %v", max, got, err)
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("reads of %v = %q; want %q", tt.maxes, got, tt.want)
			}
			mustBeEmpty(t, r)
		})
	}
}

func TestPartlyReadMessageStaysQueued(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "abcdef\nxy\n")
	checkStats(t, p, pipe.Stats{Messages: 2, Bytes: 10, Enqueued: 2})
	mustRead(t, r, 4, "abcd")
	checkStats(t, p, pipe.Stats{Messages: 2, Bytes: 10, Enqueued: 2})
	if n := p.Len(); n != 2 {
		t.Fatalf("Len() with one message partly read = %d; want 2", n)
	}
	mustRead(t, r, 4, "ef\n")
	checkStats(t, p, pipe.Stats{Messages: 1, Bytes: 3, Enqueued: 2, Delivered: 1})
	mustRead(t, r, 4, "xy\n")
	checkStats(t, p, pipe.Stats{Enqueued: 2, Delivered: 2})
}

// Another reader never sees the rest of a message that one reader started.
func TestPartialBelongsToItsReader(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r1, r2 := p.NewWriter(), p.NewReader(), p.NewReader()
	write(t, w, "first message\nsecond\n")
	mustRead(t, r1, 5, "first")
	mustRead(t, r2, 100, "second\n")
	mustBeEmpty(t, r2)
	mustRead(t, r1, 100, " message\n")
}

// cont continues a read(2) that already returned bytes: it finishes the
// message in progress but never starts the next one.
func TestReadCont(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "abcdef\nnext\n")
	for _, step := range []struct {
		max  int
		cont bool
		want string
	}{
		{2, false, "ab"},
		{2, true, "cd"},
		{100, true, "ef\n"},
		{100, true, ""}, // the message ended: the read(2) ends short
		{100, true, ""},
		{100, false, "next\n"},
	} {
		parts, err := r.Read(nil, step.max, step.cont, true, nil, nil)
		if got := string(bytes.Join(parts, nil)); err != nil || got != step.want {
			t.Fatalf("Read(max %d, cont %v) = %q, %v; want %q, nil", step.max, step.cont, got, err, step.want)
		}
	}
	// On an empty pipe, cont ends the read(2) rather than waiting.
	req := new(pipe.ReadRequest)
	if parts, err := r.Read(nil, 100, true, false, req, make(readDone, 1)); err != nil || len(parts) != 0 {
		t.Fatalf("Read(cont) on an empty pipe = %q, %v; want nothing, nil", parts, err)
	}
	checkStats(t, p, pipe.Stats{Enqueued: 2, Delivered: 2})
}

func TestReadZeroMax(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "ab\n")
	for _, max := range []int{0, -1} {
		if parts, err := r.Read(nil, max, false, true, nil, nil); err != nil || len(parts) != 0 {
			t.Fatalf("Read(max %d) = %q, %v; want nothing, nil", max, parts, err)
		}
	}
	mustRead(t, r, 10, "ab\n")
}

// Read appends to dst rather than replacing it.
func TestReadAppendsToDst(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "ab\n")
	dst := [][]byte{[]byte("before")}
	got, err := r.Read(dst, 10, false, true, nil, nil)
	if err != nil || len(got) != 2 || string(got[0]) != "before" || string(got[1]) != "ab\n" {
		t.Fatalf("Read(dst) = %q, %v; want [before ab\\n]", got, err)
	}
}

func TestReaderCloseMidMessage(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r1, r2 := p.NewWriter(), p.NewReader(), p.NewReader()
	write(t, w, "abcdef\nnext\n")
	mustRead(t, r1, 3, "abc")
	r1.Close()
	r1.Close()
	checkStats(t, p, pipe.Stats{Messages: 2, Bytes: 12, Enqueued: 2})
	// The whole message is back at the head, before the next one.
	mustRead(t, r2, 100, "abcdef\n")
	mustRead(t, r2, 100, "next\n")
	checkStats(t, p, pipe.Stats{Enqueued: 2, Delivered: 2})
}

func TestReaderCloseWithoutPartial(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r1, r2 := p.NewWriter(), p.NewReader(), p.NewReader()
	write(t, w, "a\nb\n")
	mustRead(t, r1, 100, "a\n")
	r1.Close()
	mustRead(t, r2, 100, "b\n")
	mustBeEmpty(t, r2)
}

// A reader that closes after the pipe was destroyed has nothing to put
// back: the message went with the pipe.
func TestReaderCloseAfterPipeClose(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "hello\n")
	mustRead(t, r, 2, "he")
	p.Close()
	r.Close()
	checkStats(t, p, pipe.Stats{Enqueued: 1, Closed: true})
	p.Clear()
	checkStats(t, p, pipe.Stats{Enqueued: 1, Closed: true})
	rd := p.NewReader().PollRead(nil)
	if !rd.Readable || !rd.Closed {
		t.Fatalf("PollRead after Close = %+v; want readable (end of file) and closed", rd)
	}
}

func TestReadAfterPipeClose(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "abcdef\nmore\n")
	mustRead(t, r, 2, "ab")
	p.Close()
	p.Close()
	for _, cont := range []bool{false, true} {
		if parts, err := r.Read(nil, 100, cont, true, nil, nil); len(parts) != 0 || !errors.Is(err, pipe.ErrClosed) {
			t.Fatalf("Read(cont %v) after Close = %q, %v; want nothing, ErrClosed", cont, parts, err)
		}
	}
	if parts, err := r.Read(nil, 100, false, false, new(pipe.ReadRequest), make(readDone, 1)); len(parts) != 0 || !errors.Is(err, pipe.ErrClosed) {
		t.Fatalf("blocking Read after Close = %q, %v; want nothing, ErrClosed", parts, err)
	}
	checkStats(t, p, pipe.Stats{Enqueued: 2, Closed: true})
}

func TestClear(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r1, r2 := p.NewWriter(), p.NewReader(), p.NewReader()
	write(t, w, "started\nwaiting\nalso\ntail")
	mustRead(t, r1, 3, "sta")
	p.Clear()
	// The started message belongs to r1 and stays; the tail is the writer's.
	checkStats(t, p, pipe.Stats{Messages: 1, Bytes: 8, Enqueued: 3})
	mustBeEmpty(t, r2)
	mustRead(t, r1, 100, "rted\n")
	w.Close()
	mustRead(t, r2, 100, "tail\n")
	checkStats(t, p, pipe.Stats{Enqueued: 4, Delivered: 2})
}

func TestStatsCounters(t *testing.T) {
	p := newPipe(t, lines(100, 100))
	w, r := p.NewWriter(), p.NewReader()
	checkStats(t, p, pipe.Stats{})
	write(t, w, "a\nbb\nccc")
	checkStats(t, p, pipe.Stats{Messages: 2, Bytes: 5, Enqueued: 2})
	mustRead(t, r, 100, "a\n")
	checkStats(t, p, pipe.Stats{Messages: 1, Bytes: 3, Enqueued: 2, Delivered: 1})
	w.Close()
	checkStats(t, p, pipe.Stats{Messages: 2, Bytes: 7, Enqueued: 3, Delivered: 1})
	drain(t, r)
	checkStats(t, p, pipe.Stats{Enqueued: 3, Delivered: 3})

	done := make(readDone, 2)
	parkRead(t, r, 10, done)
	parkRead(t, p.NewReader(), 10, done)
	checkStats(t, p, pipe.Stats{Enqueued: 3, Delivered: 3, Readers: 2})
	p.Close()
	checkStats(t, p, pipe.Stats{Enqueued: 3, Delivered: 3, Closed: true})
}

func TestBatch(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		maxes  []int
		want   []string
	}{
		{"all fit", []string{"a\nb\nc\n"}, []int{100}, []string{"a\nb\nc\n"}},
		{"across writes", []string{"a\n", "b\n", "c\n"}, []int{100}, []string{"a\nb\nc\n"}},
		{"only whole messages", []string{"aa\nbb\ncc\n"}, []int{7, 7}, []string{"aa\nbb\n", "cc\n"}},
		{"exact fit", []string{"aa\nbb\ncc\n"}, []int{9}, []string{"aa\nbb\ncc\n"}},
		{"at least one message", []string{"aa\nbb\n"}, []int{3, 3}, []string{"aa\n", "bb\n"}},
		{"a big first message comes in pieces", []string{"abcdef\nx\n"}, []int{4, 4, 4}, []string{"abcd", "ef\n", "x\n"}},
		{"the rest of a piece is not batched", []string{"abcdef\nx\ny\n"}, []int{4, 100, 100}, []string{"abcd", "ef\n", "x\ny\n"}},
		{"stops at a message that does not fit", []string{"a\nbbbbbb\nc\n"}, []int{5, 100}, []string{"a\n", "bbbbbb\nc\n"}},
		{"tails joined", []string{"a", "b\nc", "d\n"}, []int{100}, []string{"ab\ncd\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipe(t, pipe.Settings{Capacity: 1 << 20, MaxMessage: 1 << 20, Batch: true})
			w, r := p.NewWriter(), p.NewReader()
			for _, s := range tt.writes {
				write(t, w, s)
			}
			var got []string
			for _, max := range tt.maxes {
				s, err := read(r, max)
				if err != nil {
					t.Fatalf("Read(max %d) after %q: %v", max, got, err)
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("batch reads of %v = %q; want %q", tt.maxes, got, tt.want)
			}
			mustBeEmpty(t, r)
			if s := p.Stats(); s.Messages != 0 || s.Bytes != 0 || s.Delivered != s.Enqueued {
				t.Fatalf("Stats after reading everything = %+v; want empty, all delivered", s)
			}
		})
	}
}

// Lines of one write are handed out as one view; lines of different
// writes as separate views. Either way the bytes are the messages'.
func TestBatchViews(t *testing.T) {
	p := newPipe(t, pipe.Settings{Capacity: 1 << 20, MaxMessage: 1 << 20, Batch: true})
	w, r := p.NewWriter(), p.NewReader()
	one := strings.Repeat("line\n", 100)
	write(t, w, one)
	parts, err := r.Read(nil, 1<<20, false, true, nil, nil)
	if err != nil || len(parts) != 1 || string(parts[0]) != one {
		t.Fatalf("batch Read of one write = %d parts, %v; want one part of %d bytes", len(parts), err, len(one))
	}
	write(t, w, "a\n")
	write(t, w, "b\nc\n")
	write(t, w, "d\n")
	parts, err = r.Read(nil, 1<<20, false, true, nil, nil)
	want := []string{"a\n", "b\nc\n", "d\n"}
	if err != nil || !slices.Equal(strs(parts), want) {
		t.Fatalf("batch Read of three writes = %q, %v; want %q", parts, err, want)
	}
}

// A message put back by a closing reader is not joined with a message it
// used to sit next to when another one was taken from between them.
func TestBatchViewAfterPutBack(t *testing.T) {
	p := newPipe(t, pipe.Settings{Capacity: 1 << 20, MaxMessage: 1 << 20})
	w, r1, r2 := p.NewWriter(), p.NewReader(), p.NewReader()
	write(t, w, "aaaa\nbb\ncc\n")
	mustRead(t, r1, 2, "aa")
	mustRead(t, r2, 100, "bb\n")
	r1.Close()
	if err := p.Control("batch on"); err != nil {
		t.Fatal(err)
	}
	mustRead(t, r2, 100, "aaaa\ncc\n")
}

func strs(parts [][]byte) []string {
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = string(p)
	}
	return s
}

func TestChangeModeKeepsMessages(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "a\nb\n")
	if err := p.Control("mode packets"); err != nil {
		t.Fatal(err)
	}
	write(t, w, "c\nd\n")
	want := []string{"a\n", "b\n", "c\nd\n"}
	if got := drain(t, r); !slices.Equal(got, want) {
		t.Fatalf("read %q; want %q", got, want)
	}
}
