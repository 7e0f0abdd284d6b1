package pipefs_test

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests hold pipefs to its file interface (docs/files.md) through a
// real mount of the built binary. Helpers are in helpers_test.go.

func TestQuickstart(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "jobs")
	m.sh(t, `echo build > "$M/jobs/in"`)
	if got := m.sh(t, `cat "$M/jobs/pending"`); got != "1\n" {
		t.Fatalf("cat pending before reading = %q, want %q", got, "1\n")
	}

	cat := m.start(t, "cat", m.path("jobs/out"))
	cat.waitOutput(t, "build\n")
	// cat printed the message and is blocked waiting for the next one.
	m.waitStatus(t, "jobs", "readers", "1")
	if got := m.sh(t, `cat "$M/jobs/pending"`); got != "0\n" {
		t.Fatalf("cat pending after reading = %q, want %q", got, "0\n")
	}
}

func TestPipeLifecycle(t *testing.T) {
	m := mountPipefs(t)
	wantPipes := func(t *testing.T, pipes ...string) {
		t.Helper()
		names := append([]string{"ctl"}, pipes...)
		slices.Sort(names)
		want := strings.Join(names, "\n") + "\n"
		if got := m.run(t, "ls", "-A", m.dir); got != want {
			t.Fatalf("ls %s = %q, want %q", m.dir, got, want)
		}
		if got, want := m.status(t, "")["pipes"], strconv.Itoa(len(pipes)); got != want {
			t.Fatalf("root ctl: pipes %s, want %s", got, want)
		}
	}

	version := strings.TrimPrefix(strings.TrimSpace(m.run(t, pipefsBin, "version")), "pipefs ")
	if got := m.status(t, "")["version"]; got != version {
		t.Errorf("root ctl: version %q, want %q (pipefs version)", got, version)
	}
	wantPipes(t)

	m.sh(t, `mkdir "$M/a"`)
	wantPipes(t, "a")
	m.sh(t, `echo kept > "$M/a/in"`)

	m.sh(t, `mv "$M/a" "$M/b"`)
	wantPipes(t, "b")
	if got := m.status(t, "b")["name"]; got != "b" {
		t.Errorf("b/ctl after mv: name %q, want b", got)
	}
	if got := m.sh(t, `head -n 1 "$M/b/out"`); got != "kept\n" {
		t.Errorf("message written before mv read after it: %q, want %q", got, "kept\n")
	}

	m.sh(t, `rmdir "$M/b"`)
	wantPipes(t)
	for _, name := range []string{"a", "b"} {
		if _, err := within(t, "stat", func() (os.FileInfo, error) { return os.Stat(m.path(name)) }); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat %s after mv and rmdir: %v, want ENOENT", name, err)
		}
	}
}

func TestMountFlags(t *testing.T) {
	m := mountPipefs(t, "--capacity", "2K", "--max-message", "512")
	m.mkdir(t, "p")
	for _, ctl := range []string{"", "p"} {
		st := m.status(t, ctl)
		if st["capacity"] != "2048" || st["maxmessage"] != "512" {
			t.Errorf("%s/ctl with --capacity 2K --max-message 512: capacity %s, maxmessage %s; want 2048 and 512", ctl, st["capacity"], st["maxmessage"])
		}
	}
}

func TestMkdirExisting(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "jobs")
	for _, name := range []string{"ctl", "jobs"} {
		t.Run(name, func(t *testing.T) {
			_, err := within(t, "mkdir", func() (struct{}, error) { return struct{}{}, os.Mkdir(m.path(name), 0o755) })
			if !errors.Is(err, syscall.EEXIST) {
				t.Errorf("mkdir %s: %v, want EEXIST", name, err)
			}
			m.shFails(t, `mkdir "$M/`+name+`"`)
		})
	}
	if got := m.status(t, "")["pipes"]; got != "1" {
		t.Errorf("root ctl: pipes %s, want 1", got)
	}
}

func TestPipeDirListing(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "jobs")
	want := []string{"ctl", "in", "out", "pending"}
	entries, err := within(t, "readdir", func() ([]os.DirEntry, error) { return os.ReadDir(m.path("jobs")) })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
		if !e.Type().IsRegular() {
			t.Errorf("jobs/%s has type %v, want a regular file", e.Name(), e.Type())
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("jobs holds %q, want %q", got, want)
	}
	if got, want := m.run(t, "ls", "-A", m.path("jobs")), "ctl\nin\nout\npending\n"; got != want {
		t.Errorf("ls -A jobs = %q, want %q", got, want)
	}
}

func TestLinesMode(t *testing.T) {
	m := mountPipefs(t)
	tests := []struct {
		name   string
		script string // writes to "$P/in"; $F is a scratch file
		want   []string
	}{
		{"three lines", `printf 'a\nb\nc\n' > "$P/in"`, []string{"a\n", "b\n", "c\n"}},
		{"unterminated tail", `printf abc > "$P/in"`, []string{"abc\n"}},
		{"lines then a tail", `printf 'x\ny' > "$P/in"`, []string{"x\n", "y\n"}},
		{"empty line", `printf '\n' > "$P/in"`, []string{"\n"}},
		{"echo", `echo hello world > "$P/in"`, []string{"hello world\n"}},
		{"cat of a file", `printf 'one\ntwo' > "$F" && cat "$F" > "$P/in"`, []string{"one\n", "two\n"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := fmt.Sprintf("p%d", i)
			m.mkdir(t, p)
			m.sh(t, fmt.Sprintf(`P="$M/%s" F="%s"; %s`, p, filepath.Join(t.TempDir(), "file"), tc.script))
			m.wantPending(t, p, len(tc.want))
			r := m.openFD(t, p+"/out", "r,nonblock")
			for _, w := range tc.want {
				r.mustRead(t, 1<<16, w)
			}
			if got, errno := r.read(t, 1<<16); errno != "EAGAIN" {
				t.Errorf("read after the last message = %q, %q; want EAGAIN", got, errno)
			}
		})
	}
}

func TestHeadConsumesOneLine(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "p")
	m.sh(t, `printf 'a\nb\nc\n' > "$M/p/in"`)
	m.wantPending(t, "p", 3)
	for i, want := range []string{"a\n", "b\n"} {
		if got := m.sh(t, `head -n 1 "$M/p/out"`); got != want {
			t.Fatalf("head -n 1 out = %q, want %q", got, want)
		}
		m.wantPending(t, "p", 2-i)
	}
}

func TestLineSplitAcrossWrites(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "p")
	w := m.openFD(t, "p/in", "w")
	w.mustWrite(t, "ab")
	m.wantPending(t, "p", 0)
	w.mustWrite(t, "cd")
	m.wantPending(t, "p", 0)
	w.mustWrite(t, "ef\ng")
	m.wantPending(t, "p", 1)

	// A tail belongs to its open file: another writer's line does not
	// join it.
	other := m.openFD(t, "p/in", "w")
	other.mustWrite(t, "zz\n")
	m.wantPending(t, "p", 2)
	if r := w.ask(t, "close"); r != "ok" {
		t.Fatalf("close: %s", r)
	}
	m.wantPending(t, "p", 3) // close queued the tail before returning

	r := m.openFD(t, "p/out", "r,nonblock")
	for _, want := range []string{"abcdef\n", "zz\n", "g\n"} {
		r.mustRead(t, 1<<16, want)
	}
}

func TestPacketsMode(t *testing.T) {
	packets := []string{"\x00", "a\nb\n", "no newline", "\x00\n\x00\xff\xfe", "\n", strings.Repeat("x\x00\n", 1000)}
	writers := []struct {
		name  string
		write func(t *testing.T, m *mount, in string)
	}{
		{"go", func(t *testing.T, m *mount, in string) {
			w := m.openFD(t, in, "w")
			for _, p := range packets {
				w.mustWrite(t, p)
			}
		}},
		{"python", func(t *testing.T, m *mount, in string) {
			const script = `
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
for h in sys.argv[2:]:
    b = bytes.fromhex(h)
    n = os.write(fd, b)
    assert n == len(b), (n, len(b))
os.close(fd)
`
			args := []string{"-c", script, m.path(in)}
			for _, p := range packets {
				args = append(args, fmt.Sprintf("%x", p))
			}
			m.run(t, requirePython(t), args...)
		}},
	}
	m := mountPipefs(t)
	for _, w := range writers {
		t.Run(w.name, func(t *testing.T) {
			m.mkdir(t, w.name)
			m.sh(t, `echo 'mode packets' > "$M/`+w.name+`/ctl"`)
			if got := m.status(t, w.name)["mode"]; got != "packets" {
				t.Fatalf("ctl: mode %q after 'mode packets', want packets", got)
			}
			w.write(t, m, w.name+"/in")
			m.wantPending(t, w.name, len(packets))
			r := m.openFD(t, w.name+"/out", "r,nonblock")
			for _, p := range packets {
				r.mustRead(t, 1<<16, p)
			}
			if got, errno := r.read(t, 1<<16); errno != "EAGAIN" {
				t.Errorf("read after the last packet = %q, %q; want EAGAIN", got, errno)
			}
		})
	}
}

func TestReadReturnsOneMessage(t *testing.T) {
	type read struct {
		size    int
		want    string
		pending int // after the read
	}
	tests := []struct {
		name   string
		mode   string
		writes []string // each one write(2)
		reads  []read
	}{
		{"one message per read", "lines", []string{"one\ntwo\nthree\n"},
			[]read{{1 << 16, "one\n", 2}, {1 << 16, "two\n", 1}, {1 << 16, "three\n", 0}}},
		{"small buffer reads a message in pieces", "lines", []string{"hello, world\n"},
			[]read{{5, "hello", 1}, {5, ", wor", 1}, {5, "ld\n", 0}}},
		{"a piece never reaches into the next message", "lines", []string{"abc\ndef\n"},
			[]read{{2, "ab", 2}, {10, "c\n", 1}, {10, "def\n", 0}}},
		{"packets in pieces", "packets", []string{"p1", "p2\n"},
			[]read{{1, "p", 2}, {100, "1", 1}, {100, "p2\n", 0}}},
	}
	m := mountPipefs(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := fmt.Sprintf("p%d", i)
			m.mkdir(t, p)
			m.sh(t, `echo 'mode `+tc.mode+`' > "$M/`+p+`/ctl"`)
			w := m.openFD(t, p+"/in", "w")
			for _, data := range tc.writes {
				w.mustWrite(t, data)
			}
			r := m.openFD(t, p+"/out", "r")
			for _, rd := range tc.reads {
				r.mustRead(t, rd.size, rd.want)
				m.wantPending(t, p, rd.pending)
			}
		})
	}
}

func TestPartialReadPutBack(t *testing.T) {
	tests := []struct {
		name   string
		reader func(t *testing.T, m *mount) string // reads part of the message and lets go
	}{
		{"head -c 3", func(t *testing.T, m *mount) string {
			return m.sh(t, `head -c 3 "$M/p/out"`)
		}},
		{"read(3) then close", func(t *testing.T, m *mount) string {
			r := m.openFD(t, "p/out", "r")
			got, _ := r.read(t, 3)
			if reply := r.ask(t, "close"); reply != "ok" {
				t.Fatalf("close: %s", reply)
			}
			return got
		}},
		{"read(3) then killed", func(t *testing.T, m *mount) string {
			r := m.openFD(t, "p/out", "r")
			got, _ := r.read(t, 3)
			r.cmd.Process.Kill()
			r.wait(t, failAfter)
			return got
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mountPipefs(t)
			m.mkdir(t, "p")
			m.sh(t, `echo abcdef > "$M/p/in"`)
			if got := tc.reader(t, m); got != "abc" {
				t.Fatalf("the partial reader got %q, want %q", got, "abc")
			}
			m.wantPending(t, "p", 1)
			if got := m.sh(t, `head -n 1 "$M/p/out"`); got != "abcdef\n" {
				t.Fatalf("the next reader got %q, want the whole message %q", got, "abcdef\n")
			}
			m.wantPending(t, "p", 0)
		})
	}
}

func TestBashRead(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	m := mountPipefs(t)
	m.mkdir(t, "p")
	m.sh(t, `printf '%s\n' 'a\b  c' second > "$M/p/in"`)
	m.wantPending(t, "p", 2)
	// bash reads a line one byte at a time (out is not seekable).
	for i, want := range []string{`a\b  c`, "second"} {
		got := m.run(t, "bash", "-c", `IFS= read -r line < "$M/p/out" && printf '%s' "$line"`)
		if got != want {
			t.Fatalf("read -r line < out: line = %q, want %q", got, want)
		}
		m.wantPending(t, "p", 1-i)
	}
}

func TestMaxMessage(t *testing.T) {
	m := mountPipefs(t)
	if got := m.status(t, "")["maxmessage"]; got != strconv.Itoa(maxPacket) {
		t.Errorf("root ctl: maxmessage %s, want %d", got, maxPacket)
	}
	wantEmpty := func(t *testing.T, p string) {
		t.Helper()
		st := m.status(t, p)
		if st["messages"] != "0" || st["bytes"] != "0" || st["enqueued"] != "0" {
			t.Fatalf("after a refused write: messages %s, bytes %s, enqueued %s; want all 0", st["messages"], st["bytes"], st["enqueued"])
		}
	}

	t.Run("packets", func(t *testing.T) {
		m.mkdir(t, "pk")
		if got := m.status(t, "pk")["maxmessage"]; got != strconv.Itoa(maxPacket) {
			t.Errorf("pk/ctl: maxmessage %s, want %d", got, maxPacket)
		}
		m.sh(t, `echo 'mode packets' > "$M/pk/ctl"`)
		w := m.openFD(t, "pk/in", "w")
		if n, errno := w.write(t, strings.Repeat("x", maxPacket+1)); errno != "EMSGSIZE" {
			t.Fatalf("write of %d bytes = %d, %q; want EMSGSIZE", maxPacket+1, n, errno)
		}
		wantEmpty(t, "pk")
		big := strings.Repeat("y", maxPacket)
		w.mustWrite(t, big)
		m.wantPending(t, "pk", 1)
		m.openFD(t, "pk/out", "r").mustRead(t, 2<<20, big)
	})

	t.Run("lines", func(t *testing.T) {
		m.mkdir(t, "ln")
		m.sh(t, `echo 'maxmessage 100' > "$M/ln/ctl"`)
		w := m.openFD(t, "ln/in", "w")
		for _, data := range []string{strings.Repeat("a", 100) + "\n", strings.Repeat("b", 100), "ok\n" + strings.Repeat("c", 101) + "\n"} {
			if n, errno := w.write(t, data); errno != "EMSGSIZE" {
				t.Fatalf("write of %q = %d, %q with maxmessage 100; want EMSGSIZE", describe([]string{data}), n, errno)
			}
			wantEmpty(t, "ln")
		}
		m.shFails(t, `printf '%0150d\n' 0 > "$M/ln/in"`)
		wantEmpty(t, "ln")
		w.mustWrite(t, strings.Repeat("d", 99)+"\n")
		m.wantPending(t, "ln", 1)
	})
}

// fill fills pipe p, of capacity 1K, with 128-byte lines through a
// non-blocking writer until a write fails with EAGAIN, and returns the
// lines written.
func fill(t *testing.T, m *mount, p string) []string {
	t.Helper()
	w := m.openFD(t, p+"/in", "w,nonblock")
	var lines []string
	for i := 0; ; i++ {
		line := fmt.Sprintf("%03d%s\n", i, strings.Repeat("x", 124))
		n, errno := w.write(t, line)
		if errno == "EAGAIN" {
			break
		}
		if errno != "" || n != len(line) {
			t.Fatalf("non-blocking write %d to a pipe of 1K = %d, %q; want 128 bytes or EAGAIN", i, n, errno)
		}
		if lines = append(lines, line); len(lines) > 8 {
			t.Fatalf("a pipe of capacity 1024 took %d lines of 128 bytes", len(lines))
		}
	}
	if st := m.status(t, p); len(lines) != 8 || st["bytes"] != "1024" {
		t.Fatalf("filled a pipe of 1K with %d lines of 128 bytes (ctl: bytes %s), want 8 lines, 1024 bytes", len(lines), st["bytes"])
	}
	return lines
}

func TestCapacity(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "p")
	m.sh(t, `echo 'capacity 1K' > "$M/p/ctl"`)
	if got := m.status(t, "p")["capacity"]; got != "1024" {
		t.Fatalf("ctl: capacity %s after 'capacity 1K', want 1024", got)
	}
	lines := fill(t, m, "p")

	blocked := m.openFD(t, "p/in", "w")
	last := "last\n"
	blocked.send(t, "write "+fmt.Sprintf("%x", last))
	m.waitStatus(t, "p", "writers", "1")
	blocked.noLineYet(t, "a write to a full pipe should block")

	if got := m.sh(t, `head -n 1 "$M/p/out"`); got != lines[0] {
		t.Fatalf("head -n 1 out = %q, want %q", got, lines[0])
	}
	if n, errno := parseWrite(t, blocked.nextLine(t)); n != len(last) || errno != "" {
		t.Fatalf("blocked write after a reader made room = %d, %q; want %d", n, errno, len(last))
	}
	m.waitStatus(t, "p", "writers", "0")
	m.wantPending(t, "p", 8)

	r := m.openFD(t, "p/out", "r")
	for _, want := range append(lines[1:], last) {
		r.mustRead(t, 1<<16, want)
	}
}

func TestNonblockingReadEmpty(t *testing.T) {
	tests := []struct {
		name  string
		flags string
		fcntl bool
	}{
		{"O_NONBLOCK at open", "r,nonblock", false},
		{"O_NONBLOCK set with fcntl after open", "r", true},
	}
	m := mountPipefs(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := fmt.Sprintf("p%d", i)
			m.mkdir(t, p)
			r := m.openFD(t, p+"/out", tc.flags)
			if tc.fcntl {
				if reply := r.ask(t, "nonblock"); reply != "ok" {
					t.Fatalf("fcntl(F_SETFL, O_NONBLOCK): %s", reply)
				}
			}
			if got, errno := r.read(t, 100); errno != "EAGAIN" {
				t.Fatalf("non-blocking read of an empty out = %q, %q; want EAGAIN", got, errno)
			}
			m.sh(t, `echo x > "$M/`+p+`/in"`)
			r.mustRead(t, 100, "x\n")
			if got, errno := r.read(t, 100); errno != "EAGAIN" {
				t.Fatalf("non-blocking read of an emptied out = %q, %q; want EAGAIN", got, errno)
			}
			if st := m.status(t, p); st["readers"] != "0" {
				t.Errorf("ctl: readers %s after non-blocking reads, want 0", st["readers"])
			}
		})
	}
}

// checkTimedOut checks a poll(2) with a timeout of 200ms that found
// nothing: it must wait the whole timeout, and not much longer.
func checkTimedOut(t *testing.T, what string, revents int16, took time.Duration) {
	t.Helper()
	if revents != 0 {
		t.Errorf("%s: poll(200ms) reported revents %#x, want 0", what, revents)
	}
	if took < 195*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("%s: poll(200ms) returned after %v, want about 200ms", what, took)
	}
}

func TestPollReadable(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "p")
	r := m.openFD(t, "p/out", "r")
	rev, took := r.poll(t, "in", 200)
	checkTimedOut(t, "empty out", rev, took)

	r.send(t, "poll in 10000")
	waitPolling(t, r.proc)
	m.sh(t, `echo wake > "$M/p/in"`)
	rev, took = parsePoll(t, r.nextLine(t))
	if rev&unix.POLLIN == 0 || took > 5*time.Second {
		t.Fatalf("poll(10s) of out woken by a write: revents %#x after %v, want POLLIN at once", rev, took)
	}
	if rev, _ := r.poll(t, "in", 0); rev&unix.POLLIN == 0 {
		t.Errorf("poll of out holding a message: revents %#x, want POLLIN", rev)
	}
	r.mustRead(t, 100, "wake\n")
	rev, took = r.poll(t, "in", 200)
	checkTimedOut(t, "emptied out", rev, took)
}

func TestPollWritable(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "p")
	m.sh(t, `echo 'capacity 1K' > "$M/p/ctl"`)
	w := m.openFD(t, "p/in", "w")
	if rev, _ := w.poll(t, "out", 0); rev&unix.POLLOUT == 0 {
		t.Errorf("poll of in, empty pipe: revents %#x, want POLLOUT", rev)
	}
	fill(t, m, "p")
	rev, took := w.poll(t, "out", 200)
	checkTimedOut(t, "in of a full pipe", rev, took)

	w.send(t, "poll out 10000")
	waitPolling(t, w.proc)
	m.sh(t, `head -n 1 "$M/p/out"`)
	rev, took = parsePoll(t, w.nextLine(t))
	if rev&unix.POLLOUT == 0 || took > 5*time.Second {
		t.Fatalf("poll(10s) of in woken by a read: revents %#x after %v, want POLLOUT at once", rev, took)
	}
}

func TestGoNetpollerTwoPipes(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "a")
	m.mkdir(t, "b")
	c := m.startClient(t, "goreaders", "a="+m.path("a/out"), "b="+m.path("b/out"))
	for _, want := range []string{"file a nonblock true", "file b nonblock true", "ready"} {
		if got := c.nextLine(t); got != want {
			// Without O_NONBLOCK os.File does not use the netpoller,
			// and this test would not test it.
			t.Fatalf("reader client said %q, want %q", got, want)
		}
	}

	// One message at a time: each reaches a goroutine waiting in the
	// netpoller, so every one needs a wake-up.
	for i, name := range []string{"a", "b", "b", "a", "a", "b", "a", "b", "b", "a"} {
		msg := fmt.Sprintf("%s-%d", name, i)
		m.sh(t, `echo `+msg+` > "$M/`+name+`/in"`)
		if got, want := c.nextLine(t), "msg "+name+" "+msg; got != want {
			t.Fatalf("after writing %s to %s/in the client said %q, want %q", msg, name, got, want)
		}
	}

	// Both at once.
	const n = 50
	wa := m.startShell(t, `i=0; while [ $i -lt `+strconv.Itoa(n)+` ]; do i=$((i+1)); echo "a$i"; done > "$M/a/in"`)
	wb := m.startShell(t, `i=0; while [ $i -lt `+strconv.Itoa(n)+` ]; do i=$((i+1)); echo "b$i"; done > "$M/b/in"`)
	wa.waitOK(t)
	wb.waitOK(t)
	next := map[string]int{"a": 1, "b": 1}
	for range 2 * n {
		line := c.nextLine(t)
		var name, msg string
		if _, err := fmt.Sscanf(line, "msg %s %s", &name, &msg); err != nil {
			t.Fatalf("client said %q, want a message", line)
		}
		if want := fmt.Sprintf("%s%d", name, next[name]); msg != want {
			t.Fatalf("reader %s got %q, want %q (messages of pipe %s in order)", name, msg, want, name)
		}
		next[name]++
	}
}

func TestPythonSelect(t *testing.T) {
	py := requirePython(t)
	const script = `
import os, select, sys
kind = sys.argv[1]
fds = {os.open(p, os.O_RDONLY): n for n, p in zip(sys.argv[2::2], sys.argv[3::2])}
if kind == "poll":
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
def readable(timeout):
    if kind == "select":
        r, _, _ = select.select(list(fds), [], [], timeout)
    else:
        r = [fd for fd, ev in poller.poll(timeout * 1000) if ev & select.POLLIN]
    return " ".join(sorted(fds[fd] for fd in r)) or "none"
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "check":
        print(readable(0.2), flush=True)
    elif cmd[0] == "wait":
        print(readable(10), flush=True)
    elif cmd[0] == "read":
        fd = [fd for fd, n in fds.items() if n == cmd[1]][0]
        print(os.read(fd, 65536).decode().strip(), flush=True)
`
	for _, kind := range []string{"select", "poll"} {
		t.Run(kind, func(t *testing.T) {
			m := mountPipefs(t)
			m.mkdir(t, "a")
			m.mkdir(t, "b")
			c := m.start(t, py, "-c", script, kind, "a", m.path("a/out"), "b", m.path("b/out"))
			expect := func(cmd, want string) {
				t.Helper()
				if got := c.ask(t, cmd); got != want {
					t.Fatalf("%s: %s said %q, want %q", cmd, kind, got, want)
				}
			}
			if got := c.nextLine(t); got != "ready" {
				t.Fatalf("python said %q, want ready", got)
			}
			expect("check", "none")
			m.sh(t, `echo one > "$M/b/in"`)
			expect("check", "b")
			expect("read b", "one")
			expect("check", "none")

			c.send(t, "wait")
			waitPolling(t, c)
			m.sh(t, `echo two > "$M/a/in"`)
			if got := c.nextLine(t); got != "a" {
				t.Fatalf("%s woken by a write to a said %q, want %q", kind, got, "a")
			}
			m.sh(t, `echo three > "$M/b/in"`)
			expect("check", "a b")
		})
	}
}

func TestInterruptedRead(t *testing.T) {
	// A child inherits an ignored SIGINT (go test started in the
	// background by a shell has it ignored), while a handled one is reset
	// to the default at exec.
	if signal.Ignored(os.Interrupt) {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt)
		t.Cleanup(func() { signal.Stop(ch) })
	}
	m := mountPipefs(t)
	m.mkdir(t, "p")
	for range 3 {
		cat := m.start(t, "cat", m.path("p/out"))
		m.waitStatus(t, "p", "readers", "1")
		start := time.Now()
		cat.cmd.Process.Signal(os.Interrupt)
		st := cat.wait(t, 2*time.Second)
		if ws := st.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGINT {
			t.Fatalf("blocked cat after SIGINT: %v, want killed by SIGINT; stderr %q", st, cat.stderr.String())
		}
		t.Logf("cat ended %v after SIGINT", time.Since(start))
		if out := cat.stdout.String(); out != "" {
			t.Fatalf("interrupted cat printed %q, want nothing", out)
		}
		m.waitStatus(t, "p", "readers", "0")
	}
	m.sh(t, `echo after > "$M/p/in"`)
	m.wantPending(t, "p", 1)
	if got := m.sh(t, `head -n 1 "$M/p/out"`); got != "after\n" {
		t.Fatalf("the reader after the interrupted ones got %q, want %q", got, "after\n")
	}
	if st := m.status(t, "p"); st["delivered"] != "1" || st["enqueued"] != "1" {
		t.Errorf("ctl: enqueued %s, delivered %s; want 1 and 1", st["enqueued"], st["delivered"])
	}
}

func TestConcurrentWritersAndReaders(t *testing.T) {
	const perWriter = 500
	m := mountPipefs(t)
	m.mkdir(t, "p")
	readers := []*proc{m.start(t, "cat", m.path("p/out")), m.start(t, "cat", m.path("p/out"))}
	m.waitStatus(t, "p", "readers", "2")
	loop := `i=0; while [ $i -lt ` + strconv.Itoa(perWriter) + ` ]; do i=$((i+1)); `
	writers := []*proc{
		m.startShell(t, loop+`echo "w1 $i"; done > "$M/p/in"`), // one open, many writes
		m.startShell(t, loop+`echo "w2 $i" > "$M/p/in"; done`), // an open per message
	}
	for _, w := range writers {
		w.waitOK(t)
	}
	m.waitStatus(t, "p", "delivered", strconv.Itoa(2*perWriter))
	// Back in read(2): each has written out everything it read.
	m.waitStatus(t, "p", "readers", "2")

	seen := make(map[string]int)
	for i, r := range readers {
		r.cmd.Process.Kill()
		r.wait(t, failAfter)
		last := map[string]int{}
		for _, line := range strings.Split(strings.TrimSuffix(r.stdout.String(), "\n"), "\n") {
			if line == "" {
				continue
			}
			seen[line]++
			var w string
			var n int
			if _, err := fmt.Sscanf(line, "%s %d", &w, &n); err != nil {
				t.Errorf("reader %d got %q, not a message of the writers", i, line)
				continue
			}
			if n <= last[w] {
				t.Errorf("reader %d got %q after %s %d: a writer's messages out of order", i, line, w, last[w])
			}
			last[w] = n
		}
	}
	var lost, dup []string
	for _, w := range []string{"w1", "w2"} {
		for n := 1; n <= perWriter; n++ {
			line := fmt.Sprintf("%s %d", w, n)
			switch seen[line] {
			case 0:
				lost = append(lost, line)
			case 1:
			default:
				dup = append(dup, line)
			}
			delete(seen, line)
		}
	}
	if len(lost) > 0 || len(dup) > 0 || len(seen) > 0 {
		t.Fatalf("of %d messages: lost %q, duplicated %q, unexpected %v", 2*perWriter, lost, dup, seen)
	}
}

func TestRmdirEndsBlockedReaders(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "p")
	cats := []*proc{m.start(t, "cat", m.path("p/out")), m.start(t, "cat", m.path("p/out"))}
	m.waitStatus(t, "p", "readers", "2")
	m.sh(t, `rmdir "$M/p"`)
	for _, c := range cats {
		if out := c.waitOK(t); out != "" {
			t.Errorf("%s printed %q, want end of file and nothing", c, out)
		}
	}
}

func TestWritesAfterRmdir(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "p")
	m.sh(t, `echo 'capacity 1K' > "$M/p/ctl"`)
	r := m.openFD(t, "p/out", "r")
	fill(t, m, "p")
	in := m.openFD(t, "p/in", "w")
	blocked := m.openFD(t, "p/in", "w")
	blocked.send(t, "write "+fmt.Sprintf("%x", "blocked\n"))
	m.waitStatus(t, "p", "writers", "1")

	m.sh(t, `rmdir "$M/p"`)
	if n, errno := parseWrite(t, blocked.nextLine(t)); errno != "EPIPE" {
		t.Errorf("write blocked on a full pipe when it was removed = %d, %q; want EPIPE", n, errno)
	}
	if n, errno := in.write(t, "after\n"); errno != "EPIPE" {
		t.Errorf("write to an open in after rmdir = %d, %q; want EPIPE", n, errno)
	}
	if got, errno := r.read(t, 1<<16); got != "" || errno != "" {
		t.Errorf("read of an open out after rmdir = %q, %q; want end of file (its messages are discarded)", got, errno)
	}
}

func TestBadCtlCommands(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "p")
	withoutError := func(status string) string {
		var keep []string
		for _, line := range strings.Split(status, "\n") {
			if !strings.HasPrefix(line, "error ") {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "\n")
	}
	before := m.readFile(t, "p/ctl")
	for _, cmd := range []string{"frobnicate", "mode sideways", "capacity -5", "capacity 2K\nfrobnicate"} {
		t.Run(cmd, func(t *testing.T) {
			c := m.openFD(t, "p/ctl", "w")
			if n, errno := c.write(t, cmd+"\n"); errno != "EINVAL" {
				t.Fatalf("write %q to ctl = %d, %q; want EINVAL", cmd, n, errno)
			}
			after := m.readFile(t, "p/ctl")
			if ctlLine(after, "error") == "" {
				t.Errorf("ctl after a refused %q has no error line:\n%s", cmd, after)
			}
			if withoutError(after) != withoutError(before) {
				t.Errorf("a refused %q changed the status from\n%s\nto\n%s", cmd, before, after)
			}
			m.shFails(t, `printf '`+strings.ReplaceAll(cmd, "\n", `\n`)+`\n' > "$M/p/ctl"`)
		})
	}
	m.sh(t, `echo 'capacity 2K' > "$M/p/ctl"`)
	after := m.readFile(t, "p/ctl")
	if line := ctlLine(after, "error"); line != "" || parseStatus(after)["capacity"] != "2048" {
		t.Errorf("after a good command, ctl shows %q and capacity %s; want no error line and 2048", line, parseStatus(after)["capacity"])
	}
}

func TestCtlStatus(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "jobs")
	m.sh(t, `printf 'a\nbc\n' > "$M/jobs/in"; head -n 1 "$M/jobs/out" > /dev/null`)
	st := m.status(t, "jobs")
	want := map[string]string{
		"name":       "jobs",
		"mode":       "lines",
		"messages":   "1",
		"bytes":      "3",
		"capacity":   "8388608",
		"maxmessage": strconv.Itoa(maxPacket),
		"enqueued":   "2",
		"delivered":  "1",
		"readers":    "0",
		"link":       "none",
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		got, ok := st[k]
		if !ok {
			t.Errorf("jobs/ctl has no %q line", k)
		} else if got != want[k] {
			t.Errorf("jobs/ctl: %s %q, want %q", k, got, want[k])
		}
	}
	if p := m.pending(t, "jobs"); p != st["messages"]+"\n" {
		t.Errorf("pending %q disagrees with ctl messages %s", p, st["messages"])
	}
}

func TestUnmountWithBlockedReaders(t *testing.T) {
	tests := []struct {
		name    string
		unmount func(t *testing.T, m *mount)
	}{
		{"SIGTERM", func(t *testing.T, m *mount) { m.daemon.cmd.Process.Signal(syscall.SIGTERM) }},
		{"SIGINT", func(t *testing.T, m *mount) { m.daemon.cmd.Process.Signal(syscall.SIGINT) }},
		{"pipefs umount", func(t *testing.T, m *mount) { m.run(t, pipefsBin, "umount", m.dir) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mountPipefs(t)
			m.mkdir(t, "p")
			m.sh(t, `echo discarded > "$M/p/in"; head -n 1 "$M/p/out" >/dev/null`)
			cats := []*proc{m.start(t, "cat", m.path("p/out")), m.start(t, "cat", m.path("p/out")), m.start(t, "cat", m.path("p/out"))}
			m.waitStatus(t, "p", "readers", "3")
			tc.unmount(t, m)
			if st := m.daemon.wait(t, failAfter); !st.Success() {
				t.Errorf("daemon: %v, want exit status 0; log:\n%s", st, m.daemon.stderr.String())
			}
			for _, c := range cats {
				if out := c.waitOK(t); out != "" {
					t.Errorf("%s printed %q, want end of file and nothing", c, out)
				}
			}
			if isMounted(m.dir) {
				t.Errorf("%s is still mounted", m.dir)
			}
		})
	}
}

func TestStaleMount(t *testing.T) {
	tests := []struct {
		name    string
		recover func(t *testing.T, dir string)
	}{
		{"pipefs mount recovers it", func(t *testing.T, dir string) {
			m := mountWith(t, mountOptions{dir: dir})
			if got := m.status(t, "")["pipes"]; got != "0" {
				t.Errorf("new mount: pipes %s, want 0", got)
			}
			m.mkdir(t, "p")
			m.sh(t, `echo fresh > "$M/p/in"`)
			if got := m.sh(t, `head -n 1 "$M/p/out"`); got != "fresh\n" {
				t.Errorf("new mount: head -n 1 out = %q, want %q", got, "fresh\n")
			}
		}},
		{"pipefs umount detaches it", func(t *testing.T, dir string) {
			if out, err := exec.Command(pipefsBin, "umount", dir).CombinedOutput(); err != nil {
				t.Fatalf("pipefs umount of a stale mount: %v: %s", err, out)
			}
			if isMounted(dir) {
				t.Errorf("%s is still mounted after pipefs umount", dir)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "mnt")
			old := mountWith(t, mountOptions{dir: dir})
			old.mkdir(t, "p")
			old.killed = true
			old.daemon.cmd.Process.Kill()
			old.daemon.wait(t, failAfter)
			// Reading ctl asks the daemon (an open is never answered
			// from the kernel's caches, as a stat of the directory
			// may be for a second).
			_, err := within(t, "read ctl", func() ([]byte, error) { return os.ReadFile(filepath.Join(dir, "ctl")) })
			// ECONNABORTED: a request the kernel had queued for a
			// daemon serving through io_uring (see fs.IsStale).
			if !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, syscall.ECONNABORTED) {
				t.Fatalf("read %s/ctl after kill -9 of the daemon: %v, want ENOTCONN or ECONNABORTED (a stale mount)", dir, err)
			}
			tc.recover(t, dir)
		})
	}
}

func TestSecondMountRefused(t *testing.T) {
	m := mountPipefs(t)
	stdout, stderr, err := m.exec(t, pipefsBin, "mount", m.dir)
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("second pipefs mount on a live mount: %v, want a non-zero exit (stdout %q, stderr %q)", err, stdout, stderr)
	}
	if lines := strings.Split(stderr, "\n"); len(lines) != 2 || lines[1] != "" || !strings.Contains(lines[0], m.dir) {
		t.Errorf("second pipefs mount said %q, want one line naming %s", stderr, m.dir)
	}
	m.mkdir(t, "p")
	m.sh(t, `echo still > "$M/p/in"`)
	if got := m.sh(t, `head -n 1 "$M/p/out"`); got != "still\n" {
		t.Errorf("first mount after the refused one: head -n 1 out = %q, want %q", got, "still\n")
	}
}

func TestUnprivilegedMount(t *testing.T) {
	requireFUSE(t)
	if _, err := exec.LookPath("fusermount3"); err != nil {
		fuseUnavailable(t, "fusermount3 is not installed (Debian package fuse3)")
	}
	var cred *syscall.Credential
	uid := os.Geteuid()
	if uid == 0 {
		// Run as nobody. The binary's directory is 0755 (TestMain).
		gid := 65534
		uid = 65534
		if u, err := user.Lookup("nobody"); err == nil {
			uid, _ = strconv.Atoi(u.Uid)
			gid, _ = strconv.Atoi(u.Gid)
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	// fusermount3 opens /dev/fuse as the calling user.
	probe := &mount{cred: cred}
	if _, _, err := probe.exec(t, "sh", "-c", "test -r /dev/fuse && test -w /dev/fuse"); err != nil {
		mode := "unknown"
		if fi, err := os.Stat("/dev/fuse"); err == nil {
			mode = fmt.Sprintf("mode %04o", fi.Mode().Perm())
		}
		fuseUnavailable(t, "uid %d cannot open /dev/fuse (%s), so fusermount3 cannot mount for it; standard systems make /dev/fuse 0666", uid, mode)
	}
	parent, err := os.MkdirTemp("", "pipefs-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o777); err != nil {
		t.Fatal(err)
	}
	m := mountWith(t, mountOptions{dir: filepath.Join(parent, "mnt"), cred: cred})
	if opts, _ := superOptions(m.dir); !slices.Contains(strings.Split(opts, ","), "user_id="+strconv.Itoa(uid)) {
		t.Errorf("mount options %q, want user_id=%d (mounted by that user)", opts, uid)
	}
	if cred != nil {
		// Without allow_other only the mounting user may use the
		// mount; root is no exception.
		if _, err := within(t, "stat", func() (os.FileInfo, error) { return os.Stat(m.path("ctl")) }); !errors.Is(err, syscall.EACCES) {
			t.Errorf("root's stat of another user's mount: %v, want EACCES", err)
		}
	}
	m.mkdir(t, "p")
	if got := m.run(t, "stat", "-c", "%u", m.path("p/in")); strings.TrimSpace(got) != strconv.Itoa(uid) {
		t.Errorf("p/in belongs to uid %s, want %d (the mounting user)", strings.TrimSpace(got), uid)
	}
	m.sh(t, `echo hello > "$M/p/in"`)
	if got := m.sh(t, `head -n 1 "$M/p/out"`); got != "hello\n" {
		t.Errorf("head -n 1 out = %q, want %q", got, "hello\n")
	}
}

func TestBlockedReadersDoNotStarveMkdir(t *testing.T) {
	const n = 200
	m := mountPipefs(t)
	m.mkdir(t, "busy")
	cats := make([]*proc, n)
	for i := range cats {
		cats[i] = m.start(t, "cat", m.path("busy/out"))
	}
	m.waitStatus(t, "busy", "readers", strconv.Itoa(n))

	start := time.Now()
	got := m.sh(t, `mkdir "$M/free" && echo ping > "$M/free/in" && head -n 1 "$M/free/out"`)
	if took := time.Since(start); got != "ping\n" || took > 5*time.Second {
		t.Fatalf("with %d blocked readers, mkdir and a message exchange gave %q in %v; want %q within 5s", n, got, took, "ping\n")
	}
	t.Logf("with %d blocked readers, mkdir and a message exchange took %v", n, time.Since(start))

	// Every blocked reader is served: longest-waiting first, so one
	// message each.
	m.sh(t, `i=0; while [ $i -lt `+strconv.Itoa(n)+` ]; do i=$((i+1)); echo "m$i"; done > "$M/busy/in"`)
	m.waitStatus(t, "busy", "delivered", strconv.Itoa(n))
	m.sh(t, `rmdir "$M/busy"`)
	seen := make(map[string]bool)
	for _, c := range cats {
		out := c.waitOK(t)
		if strings.Count(out, "\n") != 1 || seen[out] {
			t.Errorf("%s printed %q, want one message of its own", c, out)
		}
		seen[out] = true
	}
}

// TestDaemonRaceFree runs a mixed workload on a daemon built with the race
// detector, which makes it exit 66 instead of 0 if it saw a data race.
func TestDaemonRaceFree(t *testing.T) {
	if !raceEnabled() {
		t.Skip("needs go test -race")
	}
	bin, err := raceBin()
	if err != nil {
		t.Fatal(err)
	}
	m := mountWith(t, mountOptions{dir: filepath.Join(t.TempDir(), "mnt"), bin: bin})
	for _, p := range []string{"a", "b", "c", "d"} {
		m.mkdir(t, p)
	}

	// Blocked readers on a, a netpoller reader on b, a writer on each.
	cats := []*proc{m.start(t, "cat", m.path("a/out")), m.start(t, "cat", m.path("a/out"))}
	m.waitStatus(t, "a", "readers", "2")
	g := m.startClient(t, "goreaders", "b="+m.path("b/out"))
	g.nextLine(t) // file b nonblock ...
	g.nextLine(t) // ready
	const n = 100
	loop := `i=0; while [ $i -lt ` + strconv.Itoa(n) + ` ]; do i=$((i+1)); echo "m$i"; done > `
	wa := m.startShell(t, loop+`"$M/a/in"`)
	wb := m.startShell(t, loop+`"$M/b/in"`)
	wa.waitOK(t)
	wb.waitOK(t)
	for range n {
		g.nextLine(t)
	}
	m.waitStatus(t, "a", "delivered", strconv.Itoa(n))

	// A writer blocked on a full pipe, released by a reader.
	m.sh(t, `echo 'capacity 1K' > "$M/c/ctl"`)
	fill(t, m, "c")
	w := m.openFD(t, "c/in", "w")
	w.send(t, "write "+fmt.Sprintf("%x", "late\n"))
	m.waitStatus(t, "c", "writers", "1")
	m.sh(t, `head -n 1 "$M/c/out" >/dev/null`)
	if _, errno := parseWrite(t, w.nextLine(t)); errno != "" {
		t.Errorf("released writer: %s", errno)
	}

	// An interrupted read, and a poll woken by a write.
	cat := m.start(t, "cat", m.path("d/out"))
	m.waitStatus(t, "d", "readers", "1")
	cat.cmd.Process.Signal(os.Interrupt)
	cat.wait(t, failAfter)
	r := m.openFD(t, "d/out", "r")
	r.send(t, "poll in 10000")
	waitPolling(t, r.proc)
	m.sh(t, `echo x > "$M/d/in"`)
	r.nextLine(t)

	// mv and rmdir with blocked readers, then a shutdown with one.
	m.sh(t, `mv "$M/a" "$M/e" && rmdir "$M/e"`)
	for _, c := range cats {
		c.waitOK(t)
	}
	last := m.start(t, "cat", m.path("b/out"))
	m.waitStatus(t, "b", "readers", "1")
	m.daemon.cmd.Process.Signal(syscall.SIGTERM)
	last.waitOK(t)
	// The cleanup checks the daemon's exit status.
}
