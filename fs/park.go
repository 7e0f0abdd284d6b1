package fs

import (
	"sync"
	"sync/atomic"
	"syscall"

	"pipefs/pipe"
)

// A parked request is a READ on an empty `out` or a WRITE to a full `in`:
// the engine holds it, no goroutine waits for it, and it is answered by
// whoever makes it ready — or by an INTERRUPT.
//
// Interrupts race with parking: with two goroutines reading the device, the
// kernel's INTERRUPT for a request can be handled before the request itself
// is parked. So a request is entered in the park table before it is offered
// to the engine; an INTERRUPT marks it, and cancels it only once the
// parking goroutine has armed it (after the engine took it). The goroutine
// that arms it honours a mark that came first. The engine lets exactly one
// of cancel and completion win, so a message is never taken by a read that
// then returns EINTR, and a request is answered exactly once.
//
// Cancelling can complete other requests (a withdrawn write lets smaller
// writes behind it in), whose completions take park-table locks, so the
// engine is never called with a table lock held. Instead a goroutine that
// uses a request outside the lock holds a reference, and the struct is
// recycled only when the last reference goes.
type parked struct {
	srv    *Server
	unique uint64
	refs   atomic.Int32 // the request's own, plus one per borrower
	// guarded by the shard lock:
	interrupted bool
	armed       bool
	read        pipe.ReadRequest
	write       pipe.WriteRequest
	isWrite     bool
}

const parkShards = 16

type parkShard struct {
	mu sync.Mutex
	m  map[uint64]*parked
	// early holds INTERRUPTs whose request was not parked when they
	// came: it may be parked a moment later by the other loop goroutine.
	// Requests answered without parking leave their entry behind;
	// request numbers are never reused, so a stale entry is harmless,
	// and the set is simply emptied when it grows past earlyMax.
	early map[uint64]struct{}
}

const earlyMax = 256

type parkTable struct {
	shards [parkShards]parkShard
}

func newParkTable() *parkTable {
	t := &parkTable{}
	for i := range t.shards {
		t.shards[i].m = make(map[uint64]*parked)
		t.shards[i].early = make(map[uint64]struct{})
	}
	return t
}

func (t *parkTable) shard(unique uint64) *parkShard {
	// Kernel request numbers are even (bit 0 marks interrupts).
	return &t.shards[(unique>>1)%parkShards]
}

var parkedPool = sync.Pool{New: func() any { return new(parked) }}

// enterPark registers a request that is about to be offered to the engine.
func (s *Server) enterPark(unique uint64, isWrite bool) *parked {
	pk := parkedPool.Get().(*parked)
	pk.srv, pk.unique, pk.isWrite = s, unique, isWrite
	pk.interrupted, pk.armed = false, false
	pk.refs.Store(1)
	sh := s.parks.shard(unique)
	sh.mu.Lock()
	sh.m[unique] = pk
	if _, ok := sh.early[unique]; ok {
		delete(sh.early, unique)
		pk.interrupted = true
	}
	sh.mu.Unlock()
	return pk
}

// leavePark unregisters a request that has its answer.
func (s *Server) leavePark(pk *parked) {
	sh := s.parks.shard(pk.unique)
	sh.mu.Lock()
	if sh.m[pk.unique] == pk {
		delete(sh.m, pk.unique)
	}
	sh.mu.Unlock()
}

// unref drops a reference; the last one recycles the struct.
func (pk *parked) unref() {
	if pk.refs.Add(-1) != 0 {
		return
	}
	parts := pk.read.Parts[:0]
	clear(pk.read.Parts[:cap(pk.read.Parts)])
	pk.srv, pk.read, pk.write = nil, pipe.ReadRequest{Parts: parts}, pipe.WriteRequest{}
	parkedPool.Put(pk)
}

// cancel withdraws the request from the engine; true if it was still
// parked, and then the caller answers it with EINTR.
func (pk *parked) cancel() bool {
	if pk.isWrite {
		return pipe.CancelWrite(&pk.write)
	}
	return pipe.CancelRead(&pk.read)
}

// cancelBorrowed cancels a request the caller holds a reference to, and
// answers it EINTR if the cancel won.
func (s *Server) cancelBorrowed(pk *parked) {
	if pk.cancel() {
		s.leavePark(pk)
		s.replyErr(pk.unique, syscall.EINTR)
		pk.unref() // the request's own reference: it is answered
	}
	pk.unref() // the borrowed one
}

// afterPark runs once the engine parked the request with this unique. The
// request may already have completed and been recycled, so it is found
// again through the table.
func (s *Server) afterPark(unique uint64) {
	sh := s.parks.shard(unique)
	sh.mu.Lock()
	pk := sh.m[unique]
	if pk == nil {
		sh.mu.Unlock()
		return // completed already
	}
	pk.armed = true
	if !pk.interrupted {
		sh.mu.Unlock()
		return
	}
	pk.refs.Add(1)
	sh.mu.Unlock()
	s.cancelBorrowed(pk)
}

// interrupt handles FUSE_INTERRUPT for request target.
func (s *Server) interrupt(target uint64) {
	sh := s.parks.shard(target)
	sh.mu.Lock()
	pk := sh.m[target]
	if pk == nil {
		// Not parked: it is being answered right now, or is about to
		// be parked by the other loop goroutine (enterPark will find
		// the mark). An INTERRUPT needs no reply. Answering EAGAIN
		// instead would make the kernel resend it at once, in a loop,
		// for as long as the request takes.
		if len(sh.early) >= earlyMax {
			clear(sh.early)
		}
		sh.early[target] = struct{}{}
		sh.mu.Unlock()
		return
	}
	pk.interrupted = true
	if !pk.armed {
		sh.mu.Unlock()
		return // afterPark will see the mark
	}
	pk.refs.Add(1)
	sh.mu.Unlock()
	s.cancelBorrowed(pk)
	// The INTERRUPT itself needs no reply.
}

// ReadDone implements pipe.ReadNotifier for parked reads.
func (pk *parked) ReadDone(r *pipe.ReadRequest) {
	s := pk.srv
	s.leavePark(pk)
	s.replyRead(pk.unique, r.Parts, r.Err)
	pk.unref()
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
	pk.unref()
}
