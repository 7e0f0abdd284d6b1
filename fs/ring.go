package fs

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"pipefs/fs/uring"
)

// FUSE over io_uring (Linux 6.14 and later, when the fuse module's
// enable_uring parameter is on): the kernel keeps one request queue per
// CPU, and a request from a process on CPU n is handed to a buffer that
// the server registered for queue n, through an io_uring completion. One
// system call then answers a request and fetches the next into the same
// buffer (COMMIT_AND_FETCH), where /dev/fuse takes a write(2) and a
// read(2), and requests stay on the CPU they came from: the daemon's
// thread for queue n is pinned to CPU n, so a client that blocks in a
// request hands its CPU straight to the thread that serves it, instead of
// waking a request loop on the other CPU.
//
// Each queue's thread owns one io_uring (SINGLE_ISSUER) and the ring
// entries (a 288-byte header and a payload buffer) it registered. A
// request in an entry is served on that thread; its reply, from whichever
// goroutine answers it (at once, or later for a parked read), is copied
// into the entry, and the owner submits the commit. A parked request holds
// its entry until it is answered, so each queue keeps ringMinFree entries
// waiting for requests and registers more as requests park: an entry costs
// its header and a payload buffer of max_write bytes that is reserved as
// address space only (MAP_NORESERVE) and touched only as far as requests
// and replies fill it.
//
// INIT, FORGET and INTERRUPT, and every request before all queues have an
// entry, still come through /dev/fuse, so the /dev/fuse loops keep
// running; a reply goes back the way its request came (see writeDev).

const (
	capOverIOURing = 1 << 41 // FUSE_OVER_IO_URING, in the INIT flags

	uringCmdRegister       = 1 // FUSE_IO_URING_CMD_REGISTER
	uringCmdCommitAndFetch = 2 // FUSE_IO_URING_CMD_COMMIT_AND_FETCH

	// struct fuse_uring_req_header: in_out, op_in, ring_ent_in_out.
	ringHeaderSize = 288
	ringOpIn       = 128
	ringEntInOut   = 256
	ringCommitID   = ringEntInOut + 8
	ringPayloadSz  = ringEntInOut + 16

	ringMinFree      = 2    // entries each queue keeps waiting for requests
	ringSQEntries    = 64   // submissions per io_uring_enter at most
	ringCQEntries    = 4096 // completions; the kernel buffers any overflow
	ringWakeUserData = ^uint64(0)
)

// ringEntry is one registered FUSE ring entry.
type ringEntry struct {
	t   *ringThread // registered it, commits it, and serves its requests
	id  uint64      // index in ringSet.entries: the user_data of its commands
	qid uint16
	// hdr is Go memory the kernel writes into while the owner thread is
	// in io_uring_enter: it holds no pointers and Go's heap objects do
	// not move, and the entry keeps it alive.
	hdr     []byte
	payload []byte // mmap'd, len = the ring's payload size
	iov     [2]unix.Iovec
	used    bool // has held a request: its registration was accepted
}

// ringThread serves the queues it owns (its CPU's, and those of CPUs the
// daemon may not run on) on one locked OS thread.
type ringThread struct {
	rs   *ringSet
	cpu  int // -1: not pinned
	qids []uint16

	ring    *uring.Ring
	wakeFd  int
	wakeBuf [8]byte
	sc      loopScratch

	mu       sync.Mutex
	commits  []*ringEntry // answered entries for the owner to commit
	sleeping atomic.Bool
	stop     atomic.Bool
	done     chan struct{}
}

// ringSet is the server's FUSE ring: its threads, and the requests they
// have handed out, by unique.
type ringSet struct {
	s           *Server
	threads     []*ringThread
	payloadSize int
	requests    atomic.Uint64 // served through the ring
	queues      int
	refused     sync.Once

	entriesMu sync.Mutex                   // serialises registrations
	entries   atomic.Pointer[[]*ringEntry] // by id; copied on growth
	free      []atomic.Int32               // per queue: entries waiting in the kernel

	// mu keeps entries' memory mapped while replies are copied in:
	// stop unmaps it once closed is set.
	mu     sync.RWMutex
	closed bool

	shards [parkShards]struct {
		mu sync.Mutex
		m  map[uint64]*ringEntry
	}
}

// ringCapability is what INIT asks the kernel for: FUSE over io_uring
// unless the options turn it off.
func ringCapability(opts Options) uint64 {
	if opts.NoIOURing {
		return 0
	}
	return capOverIOURing
}

// ringParam is the fuse module's switch for FUSE over io_uring: while it is
// off, the kernel does not offer the ring at INIT.
const ringParam = "/sys/module/fuse/parameters/enable_uring"

// enableRingParam switches ringParam on when it exists, is off, and this
// process may write it (root). The parameter only lets FUSE servers ask
// for the ring when they mount; a server that does not ask is served
// through /dev/fuse as before, so switching it on changes nothing for
// other filesystems.
func (s *Server) enableRingParam() {
	b, err := os.ReadFile(ringParam)
	if err != nil || strings.TrimSpace(string(b)) != "N" {
		return // not in this kernel, or already on
	}
	if err := os.WriteFile(ringParam, []byte("Y"), 0); err != nil {
		s.log.Info("FUSE over io_uring is off in this kernel and cannot be switched on; serving through /dev/fuse", "param", ringParam, "err", err)
		return
	}
	s.log.Info("switched on FUSE over io_uring in the kernel", "param", ringParam)
}

// Transport names how requests reach the daemon, for the root ctl:
// "io_uring" once a request has come through the FUSE ring, "/dev/fuse"
// otherwise.
func (s *Server) Transport() string {
	if rs := s.ring.Load(); rs != nil && rs.requests.Load() > 0 {
		return "io_uring"
	}
	return "/dev/fuse"
}

// ringQueues reads how many queues the kernel's ring has: one per
// possible CPU.
func ringQueues() (int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		h, err := strconv.Atoi(hi)
		if err != nil {
			return 0, fmt.Errorf("/sys/devices/system/cpu/possible: %q", b)
		}
		if _, err := strconv.Atoi(lo); err != nil {
			return 0, fmt.Errorf("/sys/devices/system/cpu/possible: %q", b)
		}
		n = max(n, h+1)
	}
	return n, nil
}

// startRing sets up FUSE over io_uring after INIT negotiated it. It
// returns once every queue has entries registered (or setting up failed,
// and then requests simply keep coming through /dev/fuse).
func (s *Server) startRing() error {
	nq, err := ringQueues()
	if err != nil {
		return fmt.Errorf("counting CPUs: %w", err)
	}
	rs := &ringSet{s: s, payloadSize: maxWrite, queues: nq, free: make([]atomic.Int32, nq)}
	rs.entries.Store(new([]*ringEntry))
	for i := range rs.shards {
		rs.shards[i].m = make(map[uint64]*ringEntry)
	}
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		allowed.Zero()
	}
	owner := make([]*ringThread, nq)
	for cpu := 0; cpu < nq; cpu++ {
		if allowed.IsSet(cpu) {
			t := newRingThread(rs, cpu)
			rs.threads = append(rs.threads, t)
			owner[cpu] = t
		}
	}
	if len(rs.threads) == 0 {
		t := newRingThread(rs, -1)
		rs.threads = append(rs.threads, t)
	}
	for q := 0; q < nq; q++ {
		t := owner[q]
		if t == nil {
			t = rs.threads[q%len(rs.threads)]
		}
		t.qids = append(t.qids, uint16(q))
	}
	for _, t := range rs.threads {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			rs.unmap()
			return fmt.Errorf("eventfd: %w", err)
		}
		t.wakeFd = fd
	}
	// Requests can come through the ring as soon as every queue has an
	// entry, so the set is in place before the threads register any;
	// they register only once all of them have set up, so that a
	// failure leaves the kernel with no entries at all.
	s.ring.Store(rs)
	started := make(chan error, len(rs.threads))
	proceed := make(chan bool)
	for _, t := range rs.threads {
		go t.run(started, proceed)
	}
	var errs []error
	for range rs.threads {
		if err := <-started; err != nil {
			errs = append(errs, err)
		}
	}
	ok := len(errs) == 0
	for range rs.threads {
		proceed <- ok
	}
	if !ok {
		s.ring.Store(nil)
		for _, t := range rs.threads {
			<-t.done
		}
		rs.unmap()
		return errors.Join(errs...)
	}
	return nil
}

// stop ends the threads; they close their rings, which cancels what the
// kernel still holds. Replies after it are dropped: the connection has
// ended.
func (rs *ringSet) stop() {
	for _, t := range rs.threads {
		t.stop.Store(true)
		t.wake()
	}
	for _, t := range rs.threads {
		<-t.done
	}
	rs.unmap()
}

// unmap releases the entries' payload buffers once no reply can be
// copied into them and no ring can write into them.
func (rs *ringSet) unmap() {
	rs.mu.Lock()
	rs.closed = true
	rs.mu.Unlock()
	for _, e := range *rs.entries.Load() {
		unix.Munmap(e.payload)
		e.payload = nil
	}
	for _, t := range rs.threads {
		if t.wakeFd >= 0 {
			unix.Close(t.wakeFd)
		}
	}
}

// put records which entry holds request unique.
func (rs *ringSet) put(unique uint64, e *ringEntry) {
	sh := &rs.shards[(unique>>1)%parkShards]
	sh.mu.Lock()
	sh.m[unique] = e
	sh.mu.Unlock()
}

// take removes and returns the entry holding request unique, or nil if the
// request did not come through the ring (or was answered already).
func (rs *ringSet) take(unique uint64) *ringEntry {
	sh := &rs.shards[(unique>>1)%parkShards]
	sh.mu.Lock()
	e := sh.m[unique]
	if e != nil {
		delete(sh.m, unique)
	}
	sh.mu.Unlock()
	return e
}

// reply copies a reply (an out header, then its payload, in any split)
// into entry e and hands it to its owner to commit.
func (rs *ringSet) reply(e *ringEntry, iov [][]byte) {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	if rs.closed {
		return
	}
	hdrDone, n := 0, 0
	for _, b := range iov {
		if hdrDone < outHeaderSize {
			k := copy(e.hdr[hdrDone:outHeaderSize], b)
			hdrDone += k
			b = b[k:]
		}
		n += copy(e.payload[n:], b)
	}
	ne.PutUint32(e.hdr[ringPayloadSz:], uint32(n))
	e.t.commit(e)
}

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
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
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
	r, err := uring.New(ringSQEntries, ringCQEntries)
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
	for {
		if e := t.ring.NextSQE(); e != nil {
			return e
		}
		if err := t.ring.Enter(0); err != nil {
			t.rs.s.log.Error("io_uring submit failed", "err", err)
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
	rs.entriesMu.Lock()
	old := *rs.entries.Load()
	e.id = uint64(len(old))
	grown := append(old[:len(old):len(old)], e)
	rs.entries.Store(&grown)
	rs.entriesMu.Unlock()
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
func (t *ringThread) takeCommits() bool {
	t.mu.Lock()
	list := t.commits
	t.commits = nil
	t.mu.Unlock()
	for i, e := range list {
		t.commitSQE(e)
		list[i] = nil
	}
	return len(list) > 0
}

func (t *ringThread) serve() {
	log := t.rs.s.log
	for !t.stop.Load() {
		t.takeCommits()
		// A parked request holds its entry: keep entries free for
		// the requests that will answer it.
		for _, q := range t.qids {
			for t.rs.free[q].Load() < ringMinFree {
				if err := t.register(q); err != nil {
					log.Error("FUSE ring: cannot add an entry", "queue", q, "err", err)
					break
				}
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
		err := t.ring.Enter(wait)
		t.sleeping.Store(false)
		if err != nil {
			if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EAGAIN) {
				runtime.Gosched()
			} else {
				log.Error("FUSE ring stopped", "cpu", t.cpu, "err", err)
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
	entries := *t.rs.entries.Load()
	if c.UserData >= uint64(len(entries)) {
		return
	}
	e := entries[c.UserData]
	t.rs.free[e.qid].Add(-1)
	if c.Res < 0 {
		// The connection ended (ENOTCONN), or a commit found its
		// request gone: the entry is out of the kernel's hands. A
		// registration the kernel refused leaves the ring unready, and
		// requests keep coming through /dev/fuse.
		errno := syscall.Errno(-c.Res)
		switch {
		case errno == unix.ENOTCONN || errno == unix.ECANCELED:
		case !e.used:
			t.rs.refused.Do(func() {
				t.rs.s.log.Warn("the kernel refused FUSE over io_uring; serving through /dev/fuse", "err", errno)
			})
			t.stop.Store(true)
		default:
			t.rs.s.log.Debug("FUSE ring entry failed", "queue", e.qid, "err", errno)
		}
		return
	}
	e.used = true
	t.rs.requests.Add(1)
	t.rs.s.serveRingEntry(e, &t.sc)
}

func (t *ringThread) teardown() {
	if t.ring != nil {
		t.ring.Close()
	}
}

// serveRingEntry serves the request the kernel put in e.
func (s *Server) serveRingEntry(e *ringEntry, sc *loopScratch) {
	h := parseInHeader(e.hdr)
	psz := int(ne.Uint32(e.hdr[ringPayloadSz:]))
	arg0 := int(h.Len) - inHeaderSize - psz
	if psz > len(e.payload) || arg0 < 0 || arg0 > ringEntInOut-ringOpIn {
		s.log.Error("malformed ring request from the kernel", "op", h.Opcode, "len", h.Len, "payload", psz)
		s.ring.Load().put(h.Unique, e)
		s.replyErr(h.Unique, syscall.EIO)
		return
	}
	s.ring.Load().put(h.Unique, e)
	opIn := e.hdr[ringOpIn : ringOpIn+arg0]
	payload := e.payload[:psz]
	s.dispatch(request{h: h, opIn: opIn, payload: payload, raw: [][]byte{e.hdr[:inHeaderSize], opIn, payload}, ring: true}, sc)
}

func newRingThread(rs *ringSet, cpu int) *ringThread {
	return &ringThread{
		rs: rs, cpu: cpu, wakeFd: -1, done: make(chan struct{}),
		sc: loopScratch{out: make([]byte, reqBufSize)},
	}
}
