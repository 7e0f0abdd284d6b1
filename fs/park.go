package fs

import (
	"sync"
	"syscall"

	"pipefs/pipe"
)

// A parked request is a READ on an empty `out` or a WRITE to a full `in`:
// the engine holds it, no goroutine waits for it, and it is answered by
// whoever makes it ready — or by an INTERRUPT.
//
// Interrupts race with parking: with two goroutines reading the device,
// the kernel's INTERRUPT for a request can be handled before the request
// itself is parked. So a request is entered in the park table before it is
// offered to the engine, an INTERRUPT marks it, and the goroutine that parks
// it checks the mark afterwards. The table lock orders the two; both cancel
// through the engine, which lets exactly one of cancel and completion win,
// so a message is never taken by a read that then returns EINTR.
type parked struct {
	srv         *Server
	unique      uint64
	interrupted bool // guarded by the shard lock
	read        pipe.ReadRequest
	write       pipe.WriteRequest
	isWrite     bool
}

const parkShards = 16

type parkTable struct {
	shards [parkShards]struct {
		mu sync.Mutex
		m  map[uint64]*parked
	}
}

func newParkTable() *parkTable {
	t := &parkTable{}
	for i := range t.shards {
		t.shards[i].m = make(map[uint64]*parked)
	}
	return t
}

func (t *parkTable) shard(unique uint64) *struct {
	mu sync.Mutex
	m  map[uint64]*parked
} {
	return &t.shards[(unique>>1)%parkShards]
}

var parkedPool = sync.Pool{New: func() any { return new(parked) }}

// enter registers a request that is about to be offered to the engine.
func (s *Server) enterPark(unique uint64, isWrite bool) *parked {
	pk := parkedPool.Get().(*parked)
	pk.srv, pk.unique, pk.interrupted, pk.isWrite = s, unique, false, isWrite
	sh := s.parks.shard(unique)
	sh.mu.Lock()
	sh.m[unique] = pk
	sh.mu.Unlock()
	return pk
}

// leavePark unregisters a request that has its answer.
func (s *Server) leavePark(pk *parked) {
	sh := s.parks.shard(pk.unique)
	sh.mu.Lock()
	delete(sh.m, pk.unique)
	sh.mu.Unlock()
}

func (pk *parked) recycle() {
	parts := pk.read.Parts[:0]
	clear(pk.read.Parts[:cap(pk.read.Parts)])
	*pk = parked{}
	pk.read.Parts = parts
	parkedPool.Put(pk)
}

// cancel withdraws the request from the engine; true if it was
// still parked, and then the caller answers it with EINTR.
func (pk *parked) cancel() bool {
	if pk.isWrite {
		return pipe.CancelWrite(&pk.write)
	}
	return pipe.CancelRead(&pk.read)
}

// afterPark runs once the engine parked the request with this unique: an
// INTERRUPT that came first is honoured now. The request may already have
// completed and been recycled, so it is found again through the table.
func (s *Server) afterPark(unique uint64) {
	sh := s.parks.shard(unique)
	sh.mu.Lock()
	pk := sh.m[unique]
	cancelled := pk != nil && pk.interrupted && pk.cancel()
	if cancelled {
		delete(sh.m, unique)
	}
	sh.mu.Unlock()
	if cancelled {
		s.replyErr(unique, syscall.EINTR)
		pk.recycle()
	}
}

// interrupt handles FUSE_INTERRUPT for request target.
func (s *Server) interrupt(unique, target uint64) {
	sh := s.parks.shard(target)
	sh.mu.Lock()
	pk := sh.m[target]
	if pk == nil {
		sh.mu.Unlock()
		// Not parked: either it is being answered right now, or it has
		// not reached us yet. EAGAIN makes the kernel send the
		// INTERRUPT again if the request is still pending, and is
		// ignored (ENOENT) if it was answered.
		s.replyErr(unique, syscall.EAGAIN)
		return
	}
	pk.interrupted = true
	cancelled := pk.cancel()
	if cancelled {
		delete(sh.m, target)
	}
	sh.mu.Unlock()
	if cancelled {
		s.replyErr(target, syscall.EINTR)
		pk.recycle()
	}
	// Otherwise it is completing with its result, or not parked yet
	// (afterPark will see the mark). The INTERRUPT itself needs no reply.
}

// ReadDone implements pipe.ReadNotifier for parked reads.
func (pk *parked) ReadDone(r *pipe.ReadRequest) {
	s := pk.srv
	s.leavePark(pk)
	s.replyRead(pk.unique, r.Parts, r.Err)
	pk.recycle()
}

// WriteDone implements pipe.WriteNotifier for parked writes.
func (pk *parked) WriteDone(w *pipe.WriteRequest) {
	s := pk.srv
	s.leavePark(pk)
	if w.Err != nil {
		s.replyErr(pk.unique, errnoOf(w.Err))
	} else {
		s.replyWrite(pk.unique, w.N)
	}
	pk.recycle()
}
