package fs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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
// INIT, FORGET and INTERRUPT still come through /dev/fuse, so the
// /dev/fuse loops keep running; a reply goes back the way its request came
// (see writeDev). The kernel holds other requests from INIT until every
// queue has an entry, which is why the rings are prepared before the mount
// (prepareRing) and only asked for at INIT if that worked.

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

	ringMinFree      = 4    // entries each queue keeps waiting for requests
	ringGrowBy       = 8    // entries registered at once when a queue runs low
	ringGrowBurst    = 64   // ... and when it ran out
	ringSQEntries    = 64   // submissions per io_uring_enter at most
	ringCQEntries    = 4096 // completions; the kernel buffers any overflow
	ringWakeUserData = ^uint64(0)
)

// ringEntry is one registered FUSE ring entry.
type ringEntry struct {
	t   *ringThread // registered it, commits it, and serves its requests
	id  uint64      // index in t.entries: the user_data of its commands
	qid uint16
	// hdr is Go memory the kernel writes into while the owner thread is
	// in io_uring_enter: it holds no pointers and Go's heap objects do
	// not move, and the entry keeps it alive.
	hdr     []byte
	payload []byte // mmap'd, len = the ring's payload size
	iov     [2]unix.Iovec
	used    bool   // has held a request: its registration was accepted
	since   uint32 // the owner's sweep count when its request arrived

	// mu orders a reply's copy into the payload against the owner
	// dropping the payload's pages (see sweep).
	mu    sync.Mutex
	held  bool // holds a request not yet answered
	dirty int  // how far the payload was written since its pages were dropped
	// meta: the last request was not on the data path (a lookup, an
	// open...): see serveRingEntry.
	meta bool
}

// ringThread serves the queues it owns (its CPU's, and those of CPUs the
// daemon may not run on) on one locked OS thread.
type ringThread struct {
	rs   *ringSet
	cpu  int // -1: not pinned
	qids []uint16

	ring        *uring.Ring
	wakeFd      int
	wakeBuf     [8]byte
	kicks       []uint16 // queues to kick once new entries are submitted
	sweeps      uint32   // sweeps done (see sweep)
	growFailing bool     // the last registration failed (logged once)
	lastSweep   time.Time
	entries     []*ringEntry // registered by this thread, by id; only it reads them until it ends
	sc          loopScratch

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
	served      atomic.Bool // a request has come through the ring
	queues      int
	refused     sync.Once
	proceed     chan bool // to the threads: register and serve, or end

	free []atomic.Int32 // per queue: entries waiting in the kernel
	held atomic.Int32   // entries holding a request not yet answered

	kicks       sync.WaitGroup // kick threads and the watchdog
	stopWatch   chan struct{}
	kicking     []atomic.Int32  // per queue: kicks under way
	kickUnique  []atomic.Uint64 // per queue: the newest kick request seen
	kickThreads atomic.Int32    // len(kickTids)
	kickMu      sync.Mutex
	kickTids    map[uint32]struct{}

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
// unless the options turn it off (markReady drops it from the reply if
// the ring could not be prepared).
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
// for the ring when they mount: mounts made before, and servers that do
// not ask, are served through /dev/fuse as before, but a server mounted
// later that asks gets the ring too (docs/design.md). It is never
// switched off again.
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
	if rs := s.ring.Load(); rs != nil && rs.served.Load() {
		return "io_uring"
	}
	return "/dev/fuse"
}

// ringQueues reads how many queues the kernel's ring has: one per
// possible CPU (num_possible_cpus, a count).
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
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || h < l {
			return 0, fmt.Errorf("/sys/devices/system/cpu/possible: %q", b)
		}
		n += h - l + 1
	}
	if n <= 0 || n > 1<<16 {
		return 0, fmt.Errorf("/sys/devices/system/cpu/possible: %q", b)
	}
	return n, nil
}

// prepareRing sets up, before the mount, everything of FUSE over io_uring
// that can fail: the rings, their threads, the wake-up eventfds and the
// first entries of every queue. INIT then asks for the ring only if this
// succeeded (see markReady): once the kernel has agreed to it at INIT, it
// holds every new request until all queues have entries, so a ring that
// failed to start after INIT would hang the mount.
func (s *Server) prepareRing() error {
	nq, err := ringQueues()
	if err != nil {
		return fmt.Errorf("counting CPUs: %w", err)
	}
	rs := &ringSet{s: s, payloadSize: ringPayloadSize(), queues: nq, free: make([]atomic.Int32, nq),
		kickUnique: make([]atomic.Uint64, nq), kicking: make([]atomic.Int32, nq), kickTids: make(map[uint32]struct{})}
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
		rs.threads = append(rs.threads, newRingThread(rs, -1))
	}
	for q := 0; q < nq; q++ {
		t := owner[q]
		if t == nil {
			// A CPU the daemon may not run on: a client there
			// still uses its queue, served from another CPU.
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
	started := make(chan error, len(rs.threads))
	rs.proceed = make(chan bool)
	for _, t := range rs.threads {
		go t.run(started, rs.proceed)
	}
	var errs []error
	for range rs.threads {
		if err := <-started; err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		rs.launch(false)
		return errors.Join(errs...)
	}
	s.ringPrep = rs
	return nil
}

// launch lets the prepared threads register their entries and serve
// (INIT agreed to the ring), or ends them.
func (rs *ringSet) launch(ok bool) {
	if ok {
		// Requests can come through the ring as soon as every queue
		// has an entry: the set is in place before any is registered.
		rs.s.ring.Store(rs)
	}
	for range rs.threads {
		rs.proceed <- ok
	}
	if !ok {
		for _, t := range rs.threads {
			<-t.done
		}
		rs.unmap()
		return
	}
	rs.stopWatch = make(chan struct{})
	rs.kicks.Add(1)
	go rs.watch(rs.stopWatch)
}

// ringPayloadSize is the payload buffer of an entry: the kernel wants room
// for max_write and for max_pages pages.
func ringPayloadSize() int {
	page := os.Getpagesize()
	return (maxWrite + page - 1) / page * page
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
	// The connection has ended: a kick under way fails at once.
	if rs.stopWatch != nil {
		close(rs.stopWatch)
	}
	rs.kicks.Wait()
	rs.unmap()
}

// unmap releases the entries' payload buffers once no reply can be
// copied into them and no ring can write into them.
func (rs *ringSet) unmap() {
	rs.mu.Lock()
	rs.closed = true
	rs.mu.Unlock()
	for _, t := range rs.threads {
		for _, e := range t.entries {
			unix.Munmap(e.payload)
			e.payload = nil
		}
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
	e.mu.Lock()
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
	e.dirty = max(e.dirty, n)
	e.held = false
	e.mu.Unlock()
	rs.held.Add(-1)
	e.t.commit(e)
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
	s.dispatch(request{h: h, opIn: opIn, payload: payload, hdr: e.hdr[:inHeaderSize], ring: true}, sc)
}
