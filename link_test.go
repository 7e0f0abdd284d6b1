package pipefs_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// Links driven through ctl, end to end: FIFOs served for outside programs,
// and two pipes of one mount joined into one channel.

func TestLinkFIFO(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "f")
	dir := filepath.Join(t.TempDir(), "fifos")
	m.sh(t, `echo "link fifo `+dir+`" > "$M/f/ctl"`)
	if got := linkField(m.readFile(t, "f/ctl"), "link"); got != "fifo "+dir+" up" {
		t.Fatalf("status link = %q; want %q", got, "fifo "+dir+" up")
	}
	// An outside program writes into DIR/in, several times, opening and
	// closing the FIFO each time.
	m.sh(t, `echo one > "`+dir+`/in"; printf 'two\nthree\n' > "`+dir+`/in"`)
	for _, want := range []string{"one", "two", "three"} {
		if got := m.sh(t, `head -n 1 "$M/f/out"`); got != want+"\n" {
			t.Fatalf("head -n 1 out = %q; want %q", got, want+"\n")
		}
	}
	// Messages written to the pipe come out of DIR/out.
	m.sh(t, `echo hello > "$M/f/in"; echo world > "$M/f/in"`)
	if got := m.sh(t, `head -n 2 "`+dir+`/out"`); got != "hello\nworld\n" {
		t.Fatalf("head -n 2 DIR/out = %q; want hello, world", got)
	}
	st := m.status(t, "f")
	if st["sent"] != "2" || st["received"] != "3" {
		t.Fatalf("status sent %s received %s; want 2 and 3", st["sent"], st["received"])
	}
	// unlink: the pipe is local again.
	m.sh(t, `echo unlink > "$M/f/ctl"`)
	m.sh(t, `echo local > "$M/f/in"`)
	if got := m.sh(t, `head -n 1 "$M/f/out"`); got != "local\n" {
		t.Fatalf("after unlink, head -n 1 out = %q; want local", got)
	}
	if got := linkField(m.readFile(t, "f/ctl"), "link"); got != "none" {
		t.Fatalf("after unlink, status link = %q; want none", got)
	}
}

func TestLinkFIFOUnreadMessagesStay(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "f")
	dir := filepath.Join(t.TempDir(), "fifos")
	m.sh(t, `echo "link fifo `+dir+`" > "$M/f/ctl"`)
	// Nobody reads DIR/out: the messages wait; unlink gives them back to
	// the pipe's own readers, none lost.
	for i := 0; i < 5; i++ {
		m.sh(t, `echo msg > "$M/f/in"`)
	}
	m.sh(t, `echo unlink > "$M/f/ctl"`)
	got := m.sh(t, `n=0; while [ "$(cat "$M/f/pending")" != 0 ]; do head -n 1 "$M/f/out" >/dev/null; n=$((n+1)); done; echo $n`)
	// What the link had already written into the FIFO's one-page buffer
	// is still in the FIFO; everything else is back in the pipe.
	fifoBytes := m.sh(t, `exec 3<>"`+dir+`/out"; timeout 1 cat <&3 || true`)
	total := strings.Count(fifoBytes, "msg\n")
	var n int
	for _, c := range strings.TrimSpace(got) {
		n = n*10 + int(c-'0')
	}
	if n+total != 5 {
		t.Fatalf("after unlink: %d messages in the pipe and %d in the FIFO; want 5 in all", n, total)
	}
}

func TestLinkPipe(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "a")
	m.mkdir(t, "b")
	m.sh(t, `echo "link pipe b" > "$M/a/ctl"`)
	if got := linkField(m.readFile(t, "b/ctl"), "link"); got != "pipe a up" {
		t.Fatalf("b's status link = %q; want %q", got, "pipe a up")
	}
	m.sh(t, `echo to-b > "$M/a/in"; echo to-a > "$M/b/in"`)
	if got := m.sh(t, `head -n 1 "$M/b/out"`); got != "to-b\n" {
		t.Fatalf("b/out = %q; want to-b", got)
	}
	if got := m.sh(t, `head -n 1 "$M/a/out"`); got != "to-a\n" {
		t.Fatalf("a/out = %q; want to-a", got)
	}
	// Linking a linked pipe is refused with EINVAL and a reason.
	m.mkdir(t, "c")
	m.shFails(t, `echo "link pipe a" > "$M/c/ctl"`)
	if got := linkField(m.readFile(t, "c/ctl"), "error"); !strings.Contains(got, "already linked") {
		t.Fatalf("c's error line = %q; want it to say already linked", got)
	}
	// Unlinking one side unlinks both.
	m.sh(t, `echo unlink > "$M/b/ctl"`)
	for _, p := range []string{"a", "b"} {
		if got := linkField(m.readFile(t, p+"/ctl"), "link"); got != "none" {
			t.Fatalf("%s's status link after unlink = %q; want none", p, got)
		}
	}
}

func TestLinkBadCommands(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "p")
	for _, cmd := range []string{
		"link", "link sideways x", "link fifo relative/dir", "link fifo " + m.dir + "/inside",
		"link pipe nosuch", "link pipe p", "unlink", "unlink now",
	} {
		m.shFails(t, `echo "`+cmd+`" > "$M/p/ctl"`)
		if got := linkField(m.readFile(t, "p/ctl"), "error"); got == "" {
			t.Errorf("%q: no error line in status", cmd)
		}
		if got := linkField(m.readFile(t, "p/ctl"), "link"); got != "none" {
			t.Errorf("%q: status link = %q; want none", cmd, got)
		}
	}
}

// linkField returns the value of a ctl status line: the line that starts
// with key, without the key.
func linkField(text, key string) string {
	_, v, _ := strings.Cut(ctlLine(text, key), " ")
	return v
}
