package fs

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"pipefs/fs/uring"
)

// A ring thread: the life of one io_uring and the entries it registered.

// commit queues an answered entry for its owner t to commit, waking t if
// it sleeps.
//
// Only the owner commits. The kernel would take the commit from any ring,
// but the entry's next request would then complete on that ring: a
// client's requests would be served by a thread on the other CPU, which
// halved W1 in measurements. Handing the entry to its owner costs a
// wake-up of the owner only when it sleeps.
func (t *ringThread) commit(e *ringEntry) {
	t.mu.Lock()
	t.commits = append(t.commits, e)
	t.mu.Unlock()
	if t.sleeping.Load() && t.sleeping.Swap(false) {
		t.wake()
	}
}

// wake interrupts the owner's wait in io_uring_enter: its ring has a read
// of the eventfd pending.
func (t *ringThread) wake() {
	if t.wakeFd < 0 {
		return
	}
	one := [8]byte{1}
	unix.Write(t.wakeFd, one[:])
}

// run is the owner thread's life: set up, report to started, wait for
// proceed, serve.
func (t *ringThread) run(started chan<- error, proceed <-chan bool) {
	defer close(t.done)
	// The ring's submissions must come from this thread (SINGLE_ISSUER),
	// and its requests come from processes on t.cpu: pin it there.
	// The thread is never unlocked: pinned to one CPU, it must not go
	// back to the runtime's pool; it ends with the goroutine.
	runtime.LockOSThread()
	if t.cpu >= 0 {
		var set unix.CPUSet
		set.Set(t.cpu)
		_ = unix.SchedSetaffinity(0, &set) // locality only; serving works anywhere
	}
	err := t.setup()
	started <- err
	if ok := <-proceed; ok && err == nil {
		t.serve()
	}
	t.teardown()
}

// setup creates the ring and queues, unsubmitted, the wake-up read and the
// registration of each queue's first entries.
func (t *ringThread) setup() error {
	// Room for every first registration and the wake-up read, so that
	// none is submitted before INIT (sqe would submit when full).
	sq := uint32(ringSQEntries)
	for sq < uint32(len(t.qids)*ringMinFree+1) {
		sq *= 2
	}
	r, err := uring.New(sq, ringCQEntries)
	if err != nil {
		return err
	}
	t.ring = r
	t.armWake()
	for _, q := range t.qids {
		for range ringMinFree {
			if err := t.register(q); err != nil {
				return err
			}
		}
	}
	return nil
}

// armWake queues a read of the eventfd: commit's wake completes it.
func (t *ringThread) armWake() {
	e := t.sqe()
	e.Opcode = uring.OpRead
	e.Fd = int32(t.wakeFd)
	e.Addr = uint64(uintptr(unsafe.Pointer(&t.wakeBuf[0])))
	e.Len = uint32(len(t.wakeBuf))
	e.SetOffset(-1)
	e.UserData = ringWakeUserData
}

// sqe returns a submission entry, submitting what is queued to make room.
func (t *ringThread) sqe() *uring.SQE {
	for failed := false; ; {
		if e := t.ring.NextSQE(); e != nil {
			return e
		}
		if err := t.ring.Enter(0); err != nil {
			// The queue drains as the kernel takes entries; an error
			// here is transient (EBUSY) or the ring's end, which the
			// serve loop's own Enter reports. Log once, retry gently.
			if !failed {
				t.rs.s.log.Error("io_uring submit failed", "err", err)
				failed = true
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// register adds a new entry to queue q.
func (t *ringThread) register(q uint16) error {
	payload, err := unix.Mmap(-1, 0, t.rs.payloadSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return fmt.Errorf("FUSE ring entry buffer: %w", err)
	}
	e := &ringEntry{t: t, qid: q, hdr: make([]byte, ringHeaderSize), payload: payload}
	e.iov[0].Base, e.iov[1].Base = &e.hdr[0], &e.payload[0]
	e.iov[0].SetLen(len(e.hdr))
	e.iov[1].SetLen(len(e.payload))
	rs := t.rs
	e.id = uint64(len(t.entries))
	t.entries = append(t.entries, e)
	s := t.sqe()
	s.Opcode = uring.OpURingCmd
	s.Fd = int32(t.rs.s.fd)
	s.CmdOp = uringCmdRegister
	s.Addr = uint64(uintptr(unsafe.Pointer(&e.iov[0])))
	s.Len = 2
	s.UserData = e.id
	ne.PutUint16(s.Cmd[16:], q) // struct fuse_uring_cmd_req: flags, commit_id, qid
	rs.free[q].Add(1)
	return nil
}

// commitSQE queues the commit of an answered entry, which also makes it
// wait for the next request.
func (t *ringThread) commitSQE(e *ringEntry) {
	s := t.sqe()
	s.Opcode = uring.OpURingCmd
	s.Fd = int32(t.rs.s.fd)
	s.CmdOp = uringCmdCommitAndFetch
	s.UserData = e.id
	ne.PutUint64(s.Cmd[8:], ne.Uint64(e.hdr[ringCommitID:]))
	ne.PutUint16(s.Cmd[16:], e.qid)
	t.rs.free[e.qid].Add(1)
}

// takeCommits moves the entries answered so far to submissions.
func (t *ringThread) takeCommits() {
	t.mu.Lock()
	list := t.commits
	t.commits = nil
	t.mu.Unlock()
	for i, e := range list {
		t.commitSQE(e)
		list[i] = nil
	}
}

func (t *ringThread) serve() {
	log := t.rs.s.log
	for !t.stop.Load() {
		t.takeCommits()
		t.sweep(time.Now())
		// A parked request holds its entry: keep entries free for
		// the requests that will answer it.
		for _, q := range t.qids {
			if t.rs.free[q].Load() >= ringMinFree {
				continue
			}
			grow := ringGrowBy
			if slices.Contains(t.kicks, q) {
				// It ran out: a burst may still be arriving.
				grow = ringGrowBurst
			}
			for range grow {
				if err := t.register(q); err != nil {
					// Logged once per run of failures: the loop
					// retries at every request.
					if !t.growFailing {
						log.Error("FUSE ring: cannot add an entry", "queue", q, "err", err)
					}
					t.growFailing = true
					break
				}
				t.growFailing = false
			}
		}
		t.sleeping.Store(true)
		t.mu.Lock()
		pending := len(t.commits) > 0
		t.mu.Unlock()
		wait := uint32(1)
		if pending || t.stop.Load() {
			wait = 0
		}
		if len(t.kicks) > 0 {
			// Submit the new entries before the kick can arrive.
			if err := t.ring.Enter(0); err == nil {
				t.sendKicks()
			}
		}
		err := t.ring.Enter(wait)
		t.sleeping.Store(false)
		if err != nil {
			if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EAGAIN) {
				runtime.Gosched()
			} else {
				// The kernel keeps this thread's queues: with
				// nobody serving them their requests would hang,
				// so the connection is ended instead.
				log.Error("FUSE ring failed; ending the connection", "cpu", t.cpu, "err", err)
				t.rs.s.abort()
				return
			}
		}
		t.ring.Reap(t.complete)
	}
}

// complete handles one completion: a request in an entry, or a wake-up.
func (t *ringThread) complete(c *uring.CQE) {
	if c.UserData == ringWakeUserData {
		if !t.stop.Load() {
			t.armWake()
		}
		return
	}
	entries := t.entries
	if c.UserData >= uint64(len(entries)) {
		return
	}
	e := entries[c.UserData]
	if t.rs.free[e.qid].Add(-1) <= 0 {
		// The kernel may be queueing this queue's requests now.
		t.wantKick(e.qid)
	}
	if c.Res < 0 {
		// The connection ended (ENOTCONN), or a commit found its
		// request gone: the entry is out of the kernel's hands. A
		// registration the kernel refused leaves the ring unready, and
		// requests keep coming through /dev/fuse.
		errno := syscall.Errno(-c.Res)
		switch {
		case errno == unix.ENOTCONN || errno == unix.ECANCELED:
		case errno == unix.ECONNABORTED:
		case !e.used && !t.rs.served.Load():
			// The kernel then serves through /dev/fuse (it stops
			// asking for the ring); the idle threads cost nothing.
			t.rs.refused.Do(func() {
				t.rs.s.log.Warn("the kernel refused FUSE over io_uring; serving through /dev/fuse", "err", errno)
			})
		default:
			t.rs.s.log.Debug("FUSE ring entry failed", "queue", e.qid, "err", errno)
		}
		return
	}
	e.used = true
	if !t.rs.served.Load() {
		t.rs.served.Store(true)
	}
	t.rs.held.Add(1)
	// Nobody else sees e until it is in the request table.
	e.held, e.since = true, t.sweeps
	h := parseInHeader(e.hdr)
	psz := int(ne.Uint32(e.hdr[ringPayloadSz:]))
	if psz == 0 && e.meta && e.dirty > 0 {
		// A read (or another request without payload) after a
		// lookup or an open, which is how a reader that will park
		// typically starts: the name and the reply went through the
		// payload's first page, which a thousand parked readers would
		// each keep. Return it now, while nothing uses the payload.
		t.dropPayload(e)
	}
	e.dirty = max(e.dirty, psz)
	e.meta = h.Opcode != opRead && h.Opcode != opWrite && h.Opcode != opPoll
	t.noteRequest(e.qid, h)
	t.rs.s.serveRingEntry(e, &t.sc)
}

// ringHeldMany is how many held entries make the owner sweep: below it,
// the few payload pages that requests and replies touch stay.
const ringHeldMany = 64

// ringSweepEvery is how often, at most, a thread sweeps its entries.
const ringSweepEvery = time.Second

// sweep returns to the system the touched payload pages of entries that
// have held their request since before the previous sweep: parked
// requests that wait long. A thousand parked readers must not each keep
// the page a lookup's name once went through; a reader that parks and is
// answered within a moment (the data path) keeps its pages, so that it
// does not pay a page fault per message.
func (t *ringThread) sweep(now time.Time) {
	if now.Sub(t.lastSweep) < ringSweepEvery {
		return
	}
	t.lastSweep = now
	t.sweeps++
	if t.rs.held.Load() < ringHeldMany {
		return
	}
	for _, e := range t.entries {
		e.mu.Lock()
		if e.held && e.dirty > 0 && t.sweeps-e.since >= 2 {
			t.dropPayload(e)
		}
		e.mu.Unlock()
	}
}

// dropPayload returns e's touched payload pages; the caller makes sure
// nothing writes into the payload meanwhile.
func (t *ringThread) dropPayload(e *ringEntry) {
	page := os.Getpagesize()
	if unix.Madvise(e.payload[:(e.dirty+page-1)/page*page], unix.MADV_DONTNEED) == nil {
		e.dirty = 0
	}
}

func (t *ringThread) teardown() {
	if t.ring != nil {
		t.ring.Close()
	}
}

func newRingThread(rs *ringSet, cpu int) *ringThread {
	return &ringThread{
		rs: rs, cpu: cpu, wakeFd: -1, done: make(chan struct{}),
		sc: newLoopScratch(),
	}
}
