package fs

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"pipefs/pipe"
)

// newTestServer returns a server that is not mounted.
func newTestServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Mountpoint == "" {
		opts.Mountpoint = t.TempDir()
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return s
}

// newTestPipe makes a pipe on an unmounted server.
func newTestPipe(t *testing.T, s *Server, name string) *pipeNode {
	t.Helper()
	n, errno := s.tree.create(name, s.opts.Defaults)
	if errno != 0 {
		t.Fatalf("create(%q) = %v", name, errno)
	}
	t.Cleanup(n.pn.p.Close)
	return n.pn
}

// statusLines parses `key value` lines into keys in order and a map.
func statusLines(t *testing.T, text []byte) ([]string, map[string]string) {
	t.Helper()
	s := string(text)
	if !strings.HasSuffix(s, "\n") {
		t.Fatalf("status %q does not end with a newline", s)
	}
	var keys []string
	vals := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("status line %q is not `key value`", line)
		}
		if _, dup := vals[k]; dup {
			t.Fatalf("status key %q twice in %q", k, s)
		}
		keys = append(keys, k)
		vals[k] = v
	}
	return keys, vals
}

// pipeStatusKeys are the documented keys of a pipe's ctl, in order
// (docs/files.md), without the optional trailing `error`.
var pipeStatusKeys = []string{"name", "mode", "batch", "messages", "bytes", "capacity", "maxmessage", "enqueued", "delivered", "readers", "writers", "link"}

func TestPipeStatusKeys(t *testing.T) {
	s := newTestServer(t, Options{})
	pn := newTestPipe(t, s, "jobs")
	w := pn.p.NewWriter()
	if _, err := w.Write([]byte("one\ntwo\nthree\n"), true, nil, nil); err != nil {
		t.Fatalf("Write: %v", err)
	}
	r := pn.p.NewReader()
	if _, err := r.Read(nil, 100, false, true, nil, nil); err != nil {
		t.Fatalf("Read: %v", err)
	}

	keys, vals := statusLines(t, s.pipeStatus(pn))
	if !slices.Equal(keys, pipeStatusKeys) {
		t.Fatalf("status keys = %q; want %q", keys, pipeStatusKeys)
	}
	want := map[string]string{
		"name": "jobs", "mode": "lines", "batch": "off",
		"messages": "2", "bytes": "10",
		"capacity":   strconv.Itoa(pipe.DefaultCapacity),
		"maxmessage": strconv.Itoa(pipe.DefaultMaxMessage),
		"enqueued":   "3", "delivered": "1",
		"readers": "0", "writers": "0", "link": "none",
	}
	for k, v := range want {
		if vals[k] != v {
			t.Errorf("status %s = %q; want %q", k, vals[k], v)
		}
	}
	// The name follows a rename.
	if errno := s.tree.rename("jobs", "work"); errno != 0 {
		t.Fatalf("rename: %v", errno)
	}
	if _, vals := statusLines(t, s.pipeStatus(pn)); vals["name"] != "work" {
		t.Errorf("status name after rename = %q; want work", vals["name"])
	}
}

func TestRootStatus(t *testing.T) {
	s := newTestServer(t, Options{Version: "9.8.7", AllowOther: true, Defaults: pipe.Settings{Mode: pipe.Packets, Capacity: 4096, MaxMessage: 100}})
	newTestPipe(t, s, "a")
	newTestPipe(t, s, "b")
	keys, vals := statusLines(t, s.rootStatus())
	wantKeys := []string{"version", "pipes", "pid", "mountpoint", "mode", "capacity", "maxmessage", "allow_other", "transport"}
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("root status keys = %q; want %q", keys, wantKeys)
	}
	want := map[string]string{
		"version": "9.8.7", "pipes": "2", "pid": strconv.Itoa(os.Getpid()),
		"mountpoint": s.Mountpoint(), "mode": "packets", "capacity": "4096",
		"maxmessage": "100", "allow_other": "on",
		"transport": "/dev/fuse", // not mounted: no ring
	}
	for k, v := range want {
		if vals[k] != v {
			t.Errorf("root status %s = %q; want %q", k, vals[k], v)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	s := newTestServer(t, Options{})
	if s.opts.Defaults != pipe.DefaultSettings() || s.opts.Readers != 2 || s.opts.Version == "" || s.log == nil {
		t.Errorf("New filled options %+v; want default settings, 2 readers, a version and a logger", s.opts)
	}
	if _, err := New(Options{}); err == nil {
		t.Errorf("New without a mount point succeeded")
	}
	if _, err := New(Options{Mountpoint: t.TempDir(), Defaults: pipe.Settings{Capacity: 10, MaxMessage: 20}}); !errors.Is(err, pipe.ErrInvalid) {
		t.Errorf("New with maxmessage over capacity = %v; want ErrInvalid", err)
	}
}

func TestControl(t *testing.T) {
	def := pipe.DefaultSettings()
	with := func(f func(*pipe.Settings)) pipe.Settings { s := def; f(&s); return s }
	tests := []struct {
		desc string
		cmd  string
		ok   bool
		want pipe.Settings // after; unchanged when refused
	}{
		{"empty write", "", true, def},
		{"blank lines", "\n\n  \n", true, def},
		{"mode packets", "mode packets\n", true, with(func(s *pipe.Settings) { s.Mode = pipe.Packets })},
		{"no final newline", "mode packets", true, with(func(s *pipe.Settings) { s.Mode = pipe.Packets })},
		{"CRLF", "capacity 4K\r\n", true, with(func(s *pipe.Settings) { s.Capacity = 4096; s.MaxMessage = 4096 })},
		{"surrounding blanks", "  batch   on  \n", true, with(func(s *pipe.Settings) { s.Batch = true })},
		{"capacity lowers maxmessage", "capacity 1000", true, with(func(s *pipe.Settings) { s.Capacity = 1000; s.MaxMessage = 1000 })},
		{"several, each against the last", "capacity 2M\nmaxmessage 2M\n", true, with(func(s *pipe.Settings) { s.Capacity = 2 << 20; s.MaxMessage = 2 << 20 })},
		{"packets lowers maxmessage", "capacity 2M\nmaxmessage 2M\nmode packets\n", true, with(func(s *pipe.Settings) {
			s.Capacity, s.MaxMessage, s.Mode = 2<<20, pipe.MaxPacket, pipe.Packets
		})},
		{"clear alone", "clear\n", true, def},
		{"unknown", "frob\n", false, def},
		{"bad mode", "mode sideways\n", false, def},
		{"missing argument", "capacity\n", false, def},
		{"extra argument", "batch on off\n", false, def},
		{"capacity zero", "capacity 0\n", false, def},
		{"capacity over 1 TiB", "capacity 2048G\n", false, def},
		{"maxmessage over capacity", "maxmessage 9M\n", false, def},
		{"batch in packets", "mode packets\nbatch on\n", false, def},
		{"packets with batch", "batch on\nmode packets\n", false, def},
		{"good then bad changes nothing", "capacity 1K\nmode sideways\n", false, def},
		{"clear with an argument", "clear all\n", false, def},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s := newTestServer(t, Options{})
			pn := newTestPipe(t, s, "p")
			err := s.control(pn, []byte(tc.cmd))
			if (err == nil) != tc.ok {
				t.Fatalf("control(%q) = %v; want success %v", tc.cmd, err, tc.ok)
			}
			if err != nil && errnoOf(err) != syscall.EINVAL {
				t.Errorf("control(%q) = %v, errno %v; want EINVAL", tc.cmd, err, errnoOf(err))
			}
			if got := pn.p.Settings(); got != tc.want {
				t.Errorf("settings after control(%q) = %+v; want %+v", tc.cmd, got, tc.want)
			}
			keys, vals := statusLines(t, s.pipeStatus(pn))
			if tc.ok {
				if !slices.Equal(keys, pipeStatusKeys) {
					t.Errorf("status keys after control(%q) = %q; want %q", tc.cmd, keys, pipeStatusKeys)
				}
				return
			}
			if !slices.Equal(keys, append(slices.Clone(pipeStatusKeys), "error")) {
				t.Fatalf("status keys after refused control(%q) = %q; want the documented keys then error", tc.cmd, keys)
			}
			if vals["error"] != err.Error() {
				t.Errorf("error line = %q; want the refusal %q", vals["error"], err.Error())
			}
		})
	}
}

// A refused write shows its reason until a later write succeeds, and a
// `clear` in a refused write drops nothing.
func TestControlErrorLine(t *testing.T) {
	s := newTestServer(t, Options{})
	pn := newTestPipe(t, s, "jobs")
	w := pn.p.NewWriter()
	if _, err := w.Write([]byte("a\nb\n"), true, nil, nil); err != nil {
		t.Fatalf("Write: %v", err)
	}
	steps := []struct {
		cmd      string
		ok       bool
		errLine  string // "" for none
		messages string
	}{
		{"mode sideways\n", false, `mode "sideways": want lines or packets`, "2"},
		{"batch on\n", true, "", "2"},
		{"clear\nfrob\n", false, `unknown command "frob"`, "2"},
		{"capacity 0\n", false, "capacity must be at least 1 byte", "2"}, // replaces the earlier reason
		{"\n", true, "", "2"},                                            // even an empty write succeeds
		{"clear\n", true, "", "0"},
	}
	for i, st := range steps {
		err := s.control(pn, []byte(st.cmd))
		if (err == nil) != st.ok {
			t.Fatalf("step %d: control(%q) = %v; want success %v", i, st.cmd, err, st.ok)
		}
		keys, vals := statusLines(t, s.pipeStatus(pn))
		got, has := vals["error"]
		switch {
		case st.errLine == "" && has:
			t.Errorf("step %d: after control(%q) the status still has error %q", i, st.cmd, got)
		case st.errLine != "" && (got != st.errLine || keys[len(keys)-1] != "error"):
			t.Errorf("step %d: after control(%q) error line = %q (last key %q); want %q last", i, st.cmd, got, keys[len(keys)-1], st.errLine)
		}
		if vals["messages"] != st.messages {
			t.Errorf("step %d: after control(%q) messages = %s; want %s", i, st.cmd, vals["messages"], st.messages)
		}
	}
	if !pn.p.Settings().Batch {
		t.Errorf("batch on was undone by later refused writes")
	}
}

func TestReadSnapshot(t *testing.T) {
	s := newTestServer(t, Options{})
	pn := newTestPipe(t, s, "p")
	w := pn.p.NewWriter()
	h := &handle{kind: kindPending, pn: pn, srv: s}
	write := func(data string) {
		t.Helper()
		if _, err := w.Write([]byte(data), true, nil, nil); err != nil {
			t.Fatalf("Write(%q): %v", data, err)
		}
	}
	steps := []struct {
		desc string
		do   func()
		off  uint64
		size uint32
		want string
	}{
		{"fresh at 0", func() {}, 0, 100, "0\n"},
		{"end of file", func() {}, 2, 100, ""},
		{"after a change, 0 sees it", func() { write("x\n") }, 0, 1, "1"},
		{"later offsets keep the snapshot", func() { write(strings.Repeat("y\n", 9)) }, 1, 100, "\n"},
		{"0 again takes a new one", func() {}, 0, 100, "10\n"},
		{"past the end", func() {}, 50, 100, ""},
	}
	for _, st := range steps {
		st.do()
		if got := string(h.readSnapshot(st.off, st.size)); got != st.want {
			t.Errorf("%s: readSnapshot(%d, %d) = %q; want %q", st.desc, st.off, st.size, got, st.want)
		}
	}
	// A first read at a later offset (after lseek) still has content.
	h2 := &handle{kind: kindCtl, pn: pn, srv: s}
	if got := string(h2.readSnapshot(5, 4096)); got != string(s.pipeStatus(pn)[5:]) {
		t.Errorf("first read at offset 5 = %q; want the status from byte 5", got)
	}
	// The root ctl has no pipe.
	h3 := &handle{kind: kindRootCtl, srv: s}
	if got := h3.readSnapshot(0, 4096); !strings.HasPrefix(string(got), fmt.Sprintf("version %s\n", s.opts.Version)) {
		t.Errorf("root ctl read = %q; want the root status", got)
	}
}
