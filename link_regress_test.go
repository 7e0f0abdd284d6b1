package pipefs_test

import (
	"fmt"
	"testing"
)

// Regressions found in review of the links, each through real mounts.

// A write to a full pipe whose link failed must still bring the link back
// ("the next write to in reconnects"): the write waits for room, and only
// the link can make room.
func TestLinkWriteToFullPipeReconnects(t *testing.T) {
	a, b := mountPipefs(t), mountPipefs(t)
	a.mkdir(t, "p")
	b.mkdir(t, "p")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	a.sh(t, `echo "capacity 10" > "$M/p/ctl" && echo "link tcp `+addr+` 200ms" > "$M/p/ctl"`)
	a.waitStatusPrefix(t, "p", "link", "tcp "+addr+" failed")
	// Each write tries the link again, with the same TIMEOUT: wait
	// until it has failed again before the pipe is full.
	a.sh(t, `echo aaaa > "$M/p/in"; echo bbbb > "$M/p/in"`) // 10 bytes: full
	a.waitStatusPrefix(t, "p", "link", "tcp "+addr+" failed")
	b.sh(t, `echo "link tcp `+addr+`" > "$M/p/ctl"`)
	b.waitStatus(t, "p", "link", "tcp "+addr+" listening")
	writer := a.startShell(t, `echo cccc > "$M/p/in"`)
	a.waitStatus(t, "p", "link", "tcp "+addr+" up")
	writer.waitOK(t)
	if got := b.sh(t, `head -n 3 "$M/p/out" 2>/dev/null`); got != "aaaa\nbbbb\ncccc\n" {
		t.Fatalf("peer read %q; want the three lines in order", got)
	}
}

// With batch on, a link still forwards each message on its own: the peer
// receives three messages, not one holding three lines.
func TestLinkForwardsMessagesOneByOneWithBatchOn(t *testing.T) {
	a, b := mountPipefs(t), mountPipefs(t)
	a.mkdir(t, "p")
	b.mkdir(t, "p")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	a.sh(t, `echo "batch on" > "$M/p/ctl" && echo "link tcp `+addr+`" > "$M/p/ctl"`)
	b.sh(t, `echo "link tcp `+addr+`" > "$M/p/ctl"`)
	a.waitStatus(t, "p", "link", "tcp "+addr+" up")
	b.waitStatus(t, "p", "link", "tcp "+addr+" up")
	a.sh(t, `printf 'one\ntwo\nthree\n' > "$M/p/in"`)
	b.waitStatus(t, "p", "received", "3")
	if got := b.sh(t, `head -n 1 "$M/p/out" 2>/dev/null`); got != "one\n" {
		t.Fatalf("head -n 1 read %q; want %q", got, "one\n")
	}
	b.wantPending(t, "p", 2)
}
