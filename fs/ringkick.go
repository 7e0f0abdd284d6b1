package fs

import (
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Kicks: the kernel hands a request to a ring entry when one is waiting;
// otherwise it queues the request, and takes it from the queue only when
// an entry of that queue is committed — not when a new entry is
// registered. Parked requests hold their entries, so a burst of requests
// that park (a thousand readers of empty pipes at once) can take every
// entry of a queue before the thread registers more, and the requests
// behind them would wait for the next commit on that queue, which may
// never come if they all park too.
//
// So when a queue's last waiting entry is taken, its thread registers more
// and then kicks the queue: a kicker thread pinned to that CPU opens and
// reads the root ctl, and each of those requests, answered at once,
// commits an entry, which takes the oldest queued request with it. A
// request that arrives on the queue after a kick but is older than it
// (its unique is smaller: it was queued) asks for another kick, until
// none is left behind. The daemon's own requests are recognised by its
// pid; it makes no others on its mount.

// wantKick asks for a kick of queue q once the thread has submitted its
// new entries.
func (t *ringThread) wantKick(q uint16) {
	for _, k := range t.kicks {
		if k == q {
			return
		}
	}
	t.kicks = append(t.kicks, q)
}

// sendKicks signals the kickers of the queues that asked, after the
// registrations that give their requests somewhere to go were submitted.
func (t *ringThread) sendKicks() {
	for _, q := range t.kicks {
		if k := t.rs.kickers[q]; k != nil {
			select {
			case k <- struct{}{}:
			default: // one is pending already
			}
		}
	}
	t.kicks = t.kicks[:0]
}

// noteRequest checks a request that came through queue q for kicks: the
// kicker's own (remember its number) and stragglers (ask for another).
func (t *ringThread) noteRequest(q uint16, h inHeader) {
	rs := t.rs
	if h.PID == rs.selfPID {
		if h.Unique > rs.kickUnique[q].Load() {
			rs.kickUnique[q].Store(h.Unique)
		}
		return
	}
	if h.Unique < rs.kickUnique[q].Load() {
		t.wantKick(q)
	}
}

// startKickers starts a kicker for each queue; one whose CPU it cannot
// run on (offline, or outside the daemon's cgroup) ends at once, and its
// queue goes unkicked.
func (rs *ringSet) startKickers() {
	rs.kickers = make([]chan struct{}, rs.queues)
	for q := range rs.queues {
		k := make(chan struct{}, 1)
		rs.kickers[q] = k
		rs.kickersDone.Add(1)
		go rs.kicker(q, k)
	}
}

// stopKickers ends the kickers.
func (rs *ringSet) stopKickers() {
	for _, k := range rs.kickers {
		if k != nil {
			close(k)
		}
	}
	rs.kickersDone.Wait()
}

func (rs *ringSet) kicker(cpu int, kick <-chan struct{}) {
	defer rs.kickersDone.Done()
	// Never unlocked: a thread pinned to one CPU must not go back to
	// the runtime's pool; it ends with the goroutine.
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if unix.SchedSetaffinity(0, &set) != nil {
		for range kick {
		}
		return // its requests would not reach queue cpu
	}
	ctl := filepath.Join(rs.s.mountpoint, "ctl")
	var buf [512]byte
	for range kick {
		// Open, read and close: three requests, three commits. The
		// file is not kept open, which would keep the mount busy.
		// Plain system calls, not package os: os.Open registers the
		// descriptor with the runtime's poller, whose epoll_ctl asks
		// this very daemon for FUSE_POLL while holding one of its Ps.
		fd, err := unix.Open(ctl, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			rs.s.log.Debug("FUSE ring kick failed", "cpu", cpu, "err", err)
			continue
		}
		_, _ = unix.Read(fd, buf[:])
		unix.Close(fd)
	}
}
