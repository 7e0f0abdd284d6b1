package pipe_test

import (
	"bytes"
	"errors"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"pipefs/pipe"
)

// sizeGrammar is ParseSize's documented grammar for ASCII input: a whole
// number, an optional K, M or G, then an optional "B", or "iB" after a
// K, M or G; case-insensitive, with spaces around.
var sizeGrammar = regexp.MustCompile(`^[ \t\n\v\f\r]*([0-9]+)(?:([kKmMgG])(?:[iI]?[bB])?|[bB])?[ \t\n\v\f\r]*$`)

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1", "4096", "64K", "64k", "8M", "1G", "3KiB", "2mb", "1b",
		" 7 ", "", "K", "-1", "+1", "1.5M", "1T", "1iB", "1Ki", "1024G", "1025G",
		"9223372036854775807", "99999999999999999999K", "1kıb", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := pipe.ParseSize(s)
		if err != nil {
			if !errors.Is(err, pipe.ErrInvalid) || v != 0 {
				t.Fatalf("ParseSize(%q) = %d, %v; a refusal must be 0 and wrap ErrInvalid", s, v, err)
			}
		} else {
			if v < 0 || v > pipe.MaxCapacity {
				t.Fatalf("ParseSize(%q) = %d; out of range 0..%d", s, v, int64(pipe.MaxCapacity))
			}
			if back, err := pipe.ParseSize(strconv.FormatInt(v, 10)); back != v || err != nil {
				t.Fatalf("ParseSize(%d) = %d, %v; want it back", v, back, err)
			}
		}
		if !isASCII(s) {
			return // ToUpper may map other letters to ASCII ones
		}
		m := sizeGrammar.FindStringSubmatch(s)
		if m == nil {
			if err == nil {
				t.Fatalf("ParseSize(%q) = %d; want a refusal: not a size", s, v)
			}
			return
		}
		want, ok := new(big.Int).SetString(m[1], 10)
		if !ok {
			t.Fatalf("bad test: %q", m[1])
		}
		if m[2] != "" {
			want.Lsh(want, map[string]uint{"k": 10, "m": 20, "g": 30}[strings.ToLower(m[2])])
		}
		if want.Cmp(big.NewInt(pipe.MaxCapacity)) > 0 {
			if err == nil {
				t.Fatalf("ParseSize(%q) = %d; want a refusal: over %d", s, v, int64(pipe.MaxCapacity))
			}
			return
		}
		if err != nil || v != want.Int64() {
			t.Fatalf("ParseSize(%q) = %d, %v; want %d", s, v, err, want.Int64())
		}
	})
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// FuzzApply checks that a command either changes only what it names (and
// what depends on it) into valid settings, or is refused with ErrInvalid
// and changes nothing; and that Pipe.Control agrees with Settings.Apply.
func FuzzApply(f *testing.F) {
	for _, c := range []string{"mode packets", "mode lines", "capacity 1K", "capacity 0", "maxmessage 1M",
		"maxmessage 2G", "batch on", "batch off", "batch", "clear", "mode  packets ", "capacity 1 2", "frob"} {
		f.Add(false, int64(pipe.DefaultCapacity), int64(pipe.DefaultMaxMessage), false, c)
	}
	f.Add(true, int64(100), int64(10), false, "batch on")
	f.Add(false, int64(100), int64(100), true, "mode packets")
	f.Add(false, int64(1<<30), int64(2<<20), false, "mode packets")
	f.Fuzz(func(t *testing.T, pk bool, capacity, maxMessage int64, batch bool, cmd string) {
		s := pipe.Settings{Capacity: capacity, MaxMessage: maxMessage, Batch: batch}
		if pk {
			s.Mode = pipe.Packets
		}
		if s.Validate() != nil {
			return
		}
		n, err := s.Apply(cmd)
		if err != nil {
			if !errors.Is(err, pipe.ErrInvalid) || n != s {
				t.Fatalf("%+v.Apply(%q) = %+v, %v; a refusal must wrap ErrInvalid and change nothing", s, cmd, n, err)
			}
		} else {
			if verr := n.Validate(); verr != nil {
				t.Fatalf("%+v.Apply(%q) = %+v, invalid: %v", s, cmd, n, verr)
			}
			verb := ""
			if f := strings.Fields(cmd); len(f) > 0 {
				verb = f[0]
			}
			if n.Mode != s.Mode && verb != "mode" ||
				n.Capacity != s.Capacity && verb != "capacity" ||
				n.Batch != s.Batch && verb != "batch" ||
				n.MaxMessage != s.MaxMessage && verb != "maxmessage" && n.MaxMessage > s.MaxMessage {
				t.Fatalf("%+v.Apply(%q) = %+v; it changed more than %q", s, cmd, n, verb)
			}
			lowered := map[string]int64{"capacity": n.Capacity, "mode": pipe.MaxPacket}
			if n.MaxMessage < s.MaxMessage && verb != "maxmessage" && n.MaxMessage != lowered[verb] {
				t.Fatalf("%+v.Apply(%q) = %+v; maxmessage lowered further than it had to be", s, cmd, n)
			}
		}

		p, perr := pipe.New("fuzz", s)
		if perr != nil {
			t.Fatal(perr)
		}
		defer p.Close()
		cerr := p.Control(cmd)
		if f := strings.Fields(cmd); len(f) > 0 && f[0] == "clear" {
			if (cerr == nil) != (len(f) == 1) || cerr != nil && !errors.Is(cerr, pipe.ErrInvalid) {
				t.Fatalf("Control(%q) = %v", cmd, cerr)
			}
			n, err = s, cerr
		}
		if (cerr == nil) != (err == nil) || p.Settings() != n {
			t.Fatalf("Control(%q) = %v, settings %+v; Apply gave %v, %+v", cmd, cerr, p.Settings(), err, n)
		}
	})
}

// FuzzLinesFraming writes data in lines mode cut at arbitrary points, reads
// with arbitrary buffer sizes between the writes, and checks that the bytes
// read are the bytes written plus the '\n' that closing adds, that no read
// crosses a message, and that the counters agree.
func FuzzLinesFraming(f *testing.F) {
	f.Add([]byte("hello\nworld\n"), []byte{3, 0, 9}, []byte{100}, false)
	f.Add([]byte("no newline at all"), []byte{1, 1, 1}, []byte{2, 5}, false)
	f.Add([]byte("\n\n\nab\ncd"), []byte{0, 0, 2}, []byte{1}, true)
	f.Add([]byte("a\nbb\nccc\ndddd\n"), []byte{15}, []byte{4, 0, 7}, true)
	f.Add([]byte{}, []byte{}, []byte{}, false)
	f.Add([]byte("x"), []byte{0}, []byte{0}, false)
	f.Fuzz(func(t *testing.T, data, splits, reads []byte, batch bool) {
		if len(data) > 1<<16 {
			return
		}
		p, err := pipe.New("fuzz", pipe.Settings{Capacity: 1 << 20, MaxMessage: 1 << 17, Batch: batch})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		w, r := p.NewWriter(), p.NewReader()
		var got []byte
		midMessage := false
		ri := 0
		// readSome makes up to k reads, of sizes taken in turn from reads
		// (0 meaning a large buffer), stopping when the pipe is empty.
		readSome := func(k int) {
			for range k {
				max := 1 << 20
				if len(reads) > 0 {
					if b := reads[ri%len(reads)]; b != 0 {
						max = int(b)
					}
					ri++
				}
				parts, err := r.Read(nil, max, false, true, nil, nil)
				if errors.Is(err, pipe.ErrWouldBlock) {
					return
				}
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				b := bytes.Join(parts, nil)
				nl := bytes.Count(b, []byte("\n"))
				switch {
				case len(b) == 0 || len(b) > max:
					t.Fatalf("Read(max %d) = %d bytes", max, len(b))
				case nl > 0 && b[len(b)-1] != '\n':
					t.Fatalf("Read = %q: it holds the start of another message", b)
				case nl > 1 && (!batch || midMessage):
					t.Fatalf("Read = %q: %d messages (batch %v, mid-message %v)", b, nl, batch, midMessage)
				}
				midMessage = b[len(b)-1] != '\n'
				got = append(got, b...)
			}
		}
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(splits) > 0 {
				n = min(n, int(splits[i%len(splits)]))
			}
			if n == 0 && i > len(splits)+len(data) {
				n = len(rest) // splits of only zeros: still finish
			}
			if k, err := w.Write(rest[:n], true, nil, nil); k != n || err != nil {
				t.Fatalf("Write(%q) = %d, %v", rest[:n], k, err)
			}
			rest = rest[n:]
			readSome(i % 3)
		}
		w.Close()
		readSome(len(data) + 2)

		want := data
		if len(data) > 0 && data[len(data)-1] != '\n' {
			want = append(data[:len(data):len(data)], '\n')
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %q; want %q", got, want)
		}
		msgs := uint64(bytes.Count(want, []byte("\n")))
		if s := p.Stats(); s.Messages != 0 || s.Bytes != 0 || s.Enqueued != msgs || s.Delivered != msgs {
			t.Fatalf("Stats after reading everything = %+v; want %d messages enqueued and delivered", s, msgs)
		}
	})
}

// FuzzPacketsFraming: every non-empty write comes back as one message,
// byte for byte, however it is read.
func FuzzPacketsFraming(f *testing.F) {
	f.Add([]byte("a\nb\x00c"), []byte{2, 0, 3}, []byte{1, 0})
	f.Add([]byte("\n\n\n"), []byte{1}, []byte{})
	f.Fuzz(func(t *testing.T, data, splits, reads []byte) {
		if len(data) > 1<<16 {
			return
		}
		p, err := pipe.New("fuzz", pipe.Settings{Mode: pipe.Packets, Capacity: 1 << 20, MaxMessage: 1 << 17})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		w, r := p.NewWriter(), p.NewReader()
		var want [][]byte
		for i, rest := 0, data; len(rest) > 0; i++ {
			n := len(rest)
			if len(splits) > 0 && splits[i%len(splits)] != 0 {
				n = min(n, int(splits[i%len(splits)]))
			}
			if _, err := w.Write(rest[:n], true, nil, nil); err != nil {
				t.Fatal(err)
			}
			want = append(want, rest[:n])
			rest = rest[n:]
		}
		var msg []byte
		ri := 0
		for len(want) > 0 {
			max := 1 << 20
			if len(reads) > 0 {
				if b := reads[ri%len(reads)]; b != 0 {
					max = int(b)
				}
				ri++
			}
			before := p.Stats().Delivered
			parts, err := r.Read(nil, max, false, true, nil, nil)
			if err != nil {
				t.Fatalf("Read with %d messages left: %v", len(want), err)
			}
			msg = append(msg, bytes.Join(parts, nil)...)
			if p.Stats().Delivered == before {
				continue // the message goes on
			}
			if !bytes.Equal(msg, want[0]) {
				t.Fatalf("read message %q; want %q", msg, want[0])
			}
			msg, want = nil, want[1:]
		}
		mustBeEmpty(t, r)
	})
}
