package bench

import (
	"fmt"
	"path/filepath"
)

// W7: the daemon's resident memory per queued message. Every round
// queues the messages in one pipe of a fresh private daemon (unless
// --mount is given), in writes of 2,048 lines as W3 does, and compares
// the daemon's resident memory before and after.
func runW7(e *env) error {
	o := e.opts
	n := o.Messages
	before := e.rep.figure("w7.rss.before", "W7", "daemon RSS, empty pipe", "MB", fmtMB, nil)
	after := e.rep.figure("w7.rss.after", "W7", "daemon RSS, "+thousands(n)+" messages queued", "MB", fmtMB, nil)
	overhead := e.rep.figure("w7.overhead", "W7", "overhead per 64 B message", "B", fmtFixed(1), atMost(100, "≤100B"))
	// Room for every message, and at least the 256 MiB of the issue.
	capacity := max(256<<20, 2*64*n)
	for round := range o.Rounds {
		if err := e.ctx.Err(); err != nil {
			return err
		}
		e.progress("W7: round %d/%d: queueing %s messages", round+1, o.Rounds, thousands(n))
		mount, pid, stop, err := e.freshMount(fmt.Sprintf("w7-%d", round))
		if err != nil {
			return err
		}
		err = func() error {
			name := e.pipeName("w7")
			_, remove, err := e.makePipes(mount, name, 1, fmt.Sprintf("capacity %d", capacity))
			if err != nil {
				return err
			}
			defer remove()
			m0 := e.rss(pid)
			s := &spec{}
			(&channel{t: tPipefs, path: filepath.Join(mount, name)}).addSend(s)
			s.flag("size", 64).flag("count", n).flag("lines-per-write", 2048).flag("markers", 0)
			var w writerResult
			if err := e.run("W7 writer", "linewriter", s, &w); err != nil {
				return err
			}
			pending, err := e.fsop(mount, "pending", name, 1, "")
			if err != nil {
				return err
			}
			if w.Sent != int64(n) || pending.Pending != int64(n) {
				e.rep.failf("W7 round %d: %d messages written, %d pending, want %d", round+1, w.Sent, pending.Pending, n)
			}
			m1 := e.rss(pid)
			before.set(tPipefs, round, o.Rounds, m0)
			after.set(tPipefs, round, o.Rounds, m1)
			overhead.set(tPipefs, round, o.Rounds, (m1-m0)/float64(n)-64)
			return nil
		}()
		if serr := stop(); err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("round %d: %w", round+1, err)
		}
	}
	return nil
}
