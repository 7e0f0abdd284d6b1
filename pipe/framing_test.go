package pipe_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"pipefs/pipe"
)

func TestLinesFraming(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		close  bool
		want   []string // messages, in order
	}{
		{"one line", []string{"hello\n"}, false, []string{"hello\n"}},
		{"empty lines", []string{"\n\n\n"}, false, []string{"\n", "\n", "\n"}},
		{"several lines", []string{"a\nbb\nccc\n"}, false, []string{"a\n", "bb\n", "ccc\n"}},
		{"tail kept", []string{"a\nb"}, false, []string{"a\n"}},
		{"tail completed", []string{"a\nb", "c\n"}, false, []string{"a\n", "bc\n"}},
		{"tail over writes", []string{"he", "ll", "o", "\nwor", "ld\n"}, false, []string{"hello\n", "world\n"}},
		{"tail flushed at close", []string{"a\nb"}, true, []string{"a\n", "b\n"}},
		{"only a tail", []string{"abc"}, true, []string{"abc\n"}},
		{"nothing at close", []string{"abc\n"}, true, []string{"abc\n"}},
		{"empty write", []string{""}, true, nil},
		{"empty writes around a tail", []string{"", "ab", "", "c", ""}, true, []string{"abc\n"}},
		{"binary bytes", []string{"\x00\xff\r\n\x00"}, true, []string{"\x00\xff\r\n", "\x00\n"}},
		{"crlf is not special", []string{"a\r\nb\r"}, true, []string{"a\r\n", "b\r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipe(t, pipe.DefaultSettings())
			w, r := p.NewWriter(), p.NewReader()
			for _, s := range tt.writes {
				write(t, w, s)
			}
			if tt.close {
				w.Close()
			}
			if got := drain(t, r); !slices.Equal(got, tt.want) {
				t.Fatalf("writes %q, close %v: read %q; want %q", tt.writes, tt.close, got, tt.want)
			}
		})
	}
}

// Each Writer (each open `in` file) keeps its own unterminated tail.
func TestLinesTailPerWriter(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	a, b, r := p.NewWriter(), p.NewWriter(), p.NewReader()
	write(t, a, "a1")
	write(t, b, "b1")
	write(t, a, "a2\n")
	write(t, b, "b2\nb3")
	a.Close()
	b.Close()
	want := []string{"a1a2\n", "b1b2\n", "b3\n"}
	if got := drain(t, r); !slices.Equal(got, want) {
		t.Fatalf("read %q; want %q", got, want)
	}
}

func TestWriterCloseTwice(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "x")
	w.Close()
	w.Close()
	if got := drain(t, r); !slices.Equal(got, []string{"x\n"}) {
		t.Fatalf("read %q after two Closes; want one message \"x\\n\"", got)
	}
}

// The tail is flushed even when the queue is over capacity: its bytes were
// already accepted by a write.
func TestTailFlushedOverCapacity(t *testing.T) {
	p := newPipe(t, lines(4, 4))
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "abc\nxy")
	w.Close()
	checkStats(t, p, pipe.Stats{Messages: 2, Bytes: 7, Enqueued: 2})
	if got := drain(t, r); !slices.Equal(got, []string{"abc\n", "xy\n"}) {
		t.Fatalf("read %q; want [abc\\n xy\\n]", got)
	}
}

func TestPacketsFraming(t *testing.T) {
	p := newPipe(t, packets(pipe.DefaultCapacity, pipe.MaxPacket))
	w, r := p.NewWriter(), p.NewReader()
	writes := []string{"a\nb\n", "no newline", "\x00\x01\n\n", "\n"}
	for _, s := range writes {
		write(t, w, s)
	}
	write(t, w, "") // an empty write is no message
	w.Close()       // and there is no tail in packets mode
	if got := drain(t, r); !slices.Equal(got, writes) {
		t.Fatalf("read %q; want %q", got, writes)
	}
}

func TestLargestPacket(t *testing.T) {
	p := newPipe(t, packets(pipe.DefaultCapacity, pipe.MaxPacket))
	w, r := p.NewWriter(), p.NewReader()
	big := bytes.Repeat([]byte{'\n', 0, 'x'}, pipe.MaxPacket/3)
	if n, err := w.Write(big, true, nil, nil); err != nil || n != pipe.MaxPacket {
		t.Fatalf("Write(%d bytes) = %d, %v; want %d, nil", len(big), n, err, pipe.MaxPacket)
	}
	parts, err := r.Read(nil, 2<<20, false, true, nil, nil)
	if got := bytes.Join(parts, nil); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Read = %d bytes, %v; want the %d-byte packet", len(got), err, len(big))
	}
	if _, err := w.Write(append(big, 'x'), true, nil, nil); !errors.Is(err, pipe.ErrTooBig) {
		t.Fatalf("Write(MaxPacket+1 bytes) = %v; want ErrTooBig", err)
	}
}

// The writer's buffer may be reused at once: the engine keeps a copy.
func TestWriteCopiesData(t *testing.T) {
	for _, s := range []pipe.Settings{lines(100, 100), packets(100, 100)} {
		p := newPipe(t, s)
		w, r := p.NewWriter(), p.NewReader()
		buf := []byte("abc\n")
		if _, err := w.Write(buf, true, nil, nil); err != nil {
			t.Fatal(err)
		}
		copy(buf, "XXXX")
		mustRead(t, r, 100, "abc\n")
	}
}

// A write with a message over the limit fails whole and changes nothing,
// not even the writer's tail.
func TestTooBig(t *testing.T) {
	tests := []struct {
		name   string
		s      pipe.Settings
		before string // accepted first
		write  string
		ok     bool     // the write is accepted: a control case at the limit
		want   []string // read after the writer closes
	}{
		{"line at the limit", lines(100, 4), "", "abc\n", true, []string{"abc\n"}},
		{"line too long", lines(100, 4), "", "abcd\n", false, nil},
		{"tail at the limit", lines(100, 4), "", "abc", true, []string{"abc\n"}},
		{"tail too long", lines(100, 4), "", "abcd", false, nil},
		{"tail needs room for its newline", lines(100, 4), "ok\nab", "cd", false, []string{"ok\n", "ab\n"}},
		{"tail plus first line", lines(100, 4), "ab", "cd\n", false, []string{"ab\n"}},
		{"middle line too long", lines(100, 4), "x", "\nok\ntoolong\nok\n", false, []string{"x\n"}},
		{"long line among short ones", lines(100, 4), "",
			"a\nb\nc\nd\ne\nf\ng\nh\ni\nlong\nj\n", false, nil},
		{"short lines only", lines(100, 4), "",
			"a\nb\nc\nd\ne\nf\ng\nh\ni\nlon\nj\n", true,
			strings.SplitAfter("a\nb\nc\nd\ne\nf\ng\nh\ni\nlon\nj\n", "\n")[:11]},
		{"new tail too long", lines(100, 4), "", "a\nbcde", false, nil},
		{"first line fits, tail does not", lines(100, 4), "", "abc\nabcd", false, nil},
		{"packet at the limit", packets(100, 4), "", "abcd", true, []string{"abcd"}},
		{"packet too long", packets(100, 4), "", "abcde", false, nil},
		{"maxmessage 1 allows only newlines", lines(100, 1), "\n", "x", false, []string{"\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipe(t, tt.s)
			w, r := p.NewWriter(), p.NewReader()
			if tt.before != "" {
				write(t, w, tt.before)
			}
			before := p.Stats()
			n, err := w.Write([]byte(tt.write), true, nil, nil)
			switch {
			case tt.ok && (err != nil || n != len(tt.write)):
				t.Fatalf("Write(%q) = %d, %v; want %d, nil", tt.write, n, err, len(tt.write))
			case !tt.ok && (n != 0 || !errors.Is(err, pipe.ErrTooBig)):
				t.Fatalf("Write(%q) = %d, %v; want 0, ErrTooBig", tt.write, n, err)
			case !tt.ok && p.Stats() != before:
				t.Fatalf("a refused write changed Stats from %+v to %+v", before, p.Stats())
			}
			w.Close()
			if got := drain(t, r); !slices.Equal(got, tt.want) {
				t.Fatalf("read %q; want %q", got, tt.want)
			}
		})
	}
}

// A write is all or nothing: when its lines do not all fit, none is queued
// and the writer's tail is unchanged.
func TestWriteAllOrNothing(t *testing.T) {
	p := newPipe(t, lines(10, 10))
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "12345\nab")
	n, err := w.Write([]byte("c\nd\ne\nfgh"), true, nil, nil) // 6 more bytes over 4 free
	if n != 0 || !errors.Is(err, pipe.ErrWouldBlock) {
		t.Fatalf("Write over capacity = %d, %v; want 0, ErrWouldBlock", n, err)
	}
	checkStats(t, p, pipe.Stats{Messages: 1, Bytes: 6, Enqueued: 1})
	mustRead(t, r, 100, "12345\n")
	write(t, w, "c\nd\ne\nfgh")
	w.Close()
	want := []string{"abc\n", "d\n", "e\n", "fgh\n"}
	if got := drain(t, r); !slices.Equal(got, want) {
		t.Fatalf("read %q; want %q", got, want)
	}
}

func TestCapacity(t *testing.T) {
	tests := []struct {
		name   string
		s      pipe.Settings
		queued []string // written first, all accepted
		write  string
		fits   bool
	}{
		{"exactly full", lines(10, 10), []string{"1234\n"}, "abcd\n", true},
		{"one byte over", lines(10, 10), []string{"1234\n"}, "abcde\n", false},
		{"full queue", lines(10, 10), []string{"123456789\n"}, "\n", false},
		{"several lines over", lines(10, 10), []string{"12\n"}, "a\nb\nc\nd\n", false},
		{"larger than capacity, empty queue", lines(10, 10), nil, "123456789\n123456789\n123\n", true},
		{"larger than capacity, queue not empty", lines(10, 10), []string{"\n"}, "123456789\n123456789\n", false},
		{"tail needs no room", lines(10, 10), []string{"123456789\n"}, "abc", true},
		{"packets full", packets(10, 10), []string{"12345", "67890"}, "x", false},
		{"packets fits", packets(10, 10), []string{"12345", "6789"}, "x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipe(t, tt.s)
			w := p.NewWriter()
			for _, s := range tt.queued {
				write(t, w, s)
			}
			before := p.Stats()
			n, err := w.Write([]byte(tt.write), true, nil, nil)
			if tt.fits && (err != nil || n != len(tt.write)) {
				t.Fatalf("Write(%q) = %d, %v; want %d, nil", tt.write, n, err, len(tt.write))
			}
			if !tt.fits {
				if n != 0 || !errors.Is(err, pipe.ErrWouldBlock) {
					t.Fatalf("Write(%q) = %d, %v; want 0, ErrWouldBlock", tt.write, n, err)
				}
				if after := p.Stats(); after != before {
					t.Fatalf("a refused write changed Stats from %+v to %+v", before, after)
				}
			}
		})
	}
}

// A write with no request cannot wait, whatever nonblock says.
func TestWriteWithoutRequestWouldBlock(t *testing.T) {
	p := newPipe(t, lines(4, 4))
	w := p.NewWriter()
	write(t, w, "abc\n")
	if n, err := w.Write([]byte("x\n"), false, nil, nil); n != 0 || !errors.Is(err, pipe.ErrWouldBlock) {
		t.Fatalf("blocking Write with nil request on a full pipe = %d, %v; want 0, ErrWouldBlock", n, err)
	}
	// With a request but nonblock set, it does not park either.
	var req pipe.WriteRequest
	if n, err := w.Write([]byte("x\n"), true, &req, make(writeDone, 1)); n != 0 || !errors.Is(err, pipe.ErrWouldBlock) {
		t.Fatalf("non-blocking Write on a full pipe = %d, %v; want 0, ErrWouldBlock", n, err)
	}
	if s := p.Stats(); s.Writers != 0 {
		t.Fatalf("Stats().Writers = %d; want 0", s.Writers)
	}
}

func TestWriteAfterPipeClose(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w := p.NewWriter()
	write(t, w, "tail")
	p.Close()
	if n, err := w.Write([]byte("x\n"), true, nil, nil); n != 0 || !errors.Is(err, pipe.ErrClosed) {
		t.Fatalf("Write after Close = %d, %v; want 0, ErrClosed", n, err)
	}
	w.Close() // the tail has nowhere to go
	checkStats(t, p, pipe.Stats{Closed: true})
}
