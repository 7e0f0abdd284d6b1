package fs

import (
	"path/filepath"
	"runtime"
	"time"

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
// none is left behind. The kick threads' requests are recognised by
// their thread IDs.

// ringWatchEvery is how often the watchdog kicks every queue while
// requests are held. It is the safety net under the kicks on exhaustion:
// the daemon's count of a queue's waiting entries is ahead of the
// kernel's while registrations and completions are on their way, so a
// burst can run a queue dry unseen. A request left queued that way waits
// for the next tick at most.
const ringWatchEvery = time.Second

// watch runs the watchdog until stop is closed.
func (rs *ringSet) watch(stop <-chan struct{}) {
	defer rs.kicks.Done()
	tick := time.NewTicker(ringWatchEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if rs.held.Load() == 0 {
			continue // nothing parked: a queued request would not stay queued
		}
		for q := range rs.queues {
			rs.startKick(uint16(q))
		}
	}
}

// startKick starts a kick of queue q unless ringKickers are under way.
func (rs *ringSet) startKick(q uint16) {
	if rs.kicking[q].Add(1) > ringKickers {
		rs.kicking[q].Add(-1)
		return
	}
	rs.kicks.Add(1)
	go rs.kick(q)
}

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

// sendKicks starts the kicks the queues asked for, after the
// registrations that give their requests somewhere to go were submitted.
// Each kick is a thread of its own, up to ringKickers per queue at once: a
// kick's requests can themselves be queued by the kernel when a burst is
// still arriving, and a later kick must not wait for it (once taken from
// the queue, a kick's request is answered at once, and its commit takes
// the next queued request: the queue drains).
func (t *ringThread) sendKicks() {
	for _, q := range t.kicks {
		t.rs.startKick(q)
	}
	t.kicks = t.kicks[:0]
}

// ringKickers bounds the kicks of one queue under way at once.
const ringKickers = 4

// noteRequest checks a request that came through queue q for kicks: the
// kicker's own (remember its number) and stragglers (ask for another).
func (t *ringThread) noteRequest(q uint16, h inHeader) {
	rs := t.rs
	if rs.isKicker(h.PID) {
		if h.Unique > rs.kickUnique[q].Load() {
			rs.kickUnique[q].Store(h.Unique)
		}
		return
	}
	if h.Unique < rs.kickUnique[q].Load() {
		t.wantKick(q)
	}
}

// isKicker reports whether tid, the thread a request came from (FUSE
// tells the thread, not the process), is one of the kick threads.
func (rs *ringSet) isKicker(tid uint32) bool {
	if rs.kickThreads.Load() == 0 {
		return false
	}
	rs.kickMu.Lock()
	_, ok := rs.kickTids[tid]
	rs.kickMu.Unlock()
	return ok
}

// kick makes three requests on queue q from a thread pinned to CPU q:
// open, read and close the root ctl.
func (rs *ringSet) kick(q uint16) {
	defer rs.kicks.Done()
	defer rs.kicking[q].Add(-1)
	// Never unlocked: a thread pinned to one CPU must not go back to
	// the runtime's pool; it ends with the goroutine.
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(int(q))
	if unix.SchedSetaffinity(0, &set) != nil {
		return // offline, or outside the daemon's cgroup: no client runs there either
	}
	// Plain system calls, not package os: os.Open registers the
	// descriptor with the runtime's poller, whose epoll_ctl asks this
	// very daemon for FUSE_POLL while holding one of its Ps. The file
	// is not kept open, which would keep the mount busy.
	tid := uint32(unix.Gettid())
	rs.kickMu.Lock()
	rs.kickTids[tid] = struct{}{}
	rs.kickMu.Unlock()
	rs.kickThreads.Add(1)
	defer func() {
		rs.kickThreads.Add(-1)
		rs.kickMu.Lock()
		delete(rs.kickTids, tid)
		rs.kickMu.Unlock()
	}()
	fd, err := unix.Open(filepath.Join(rs.s.mountpoint, "ctl"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		rs.s.log.Debug("FUSE ring kick failed", "queue", q, "err", err)
		return
	}
	var buf [512]byte
	_, _ = unix.Read(fd, buf[:])
	unix.Close(fd)
}
