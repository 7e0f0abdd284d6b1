package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	sysSetup = unix.SYS_IO_URING_SETUP
	sysEnter = unix.SYS_IO_URING_ENTER
)

// Setup flags, opcodes and offsets from include/uapi/linux/io_uring.h.
const (
	setupCQSize       = 1 << 3
	setupSubmitAll    = 1 << 7
	setupSQE128       = 1 << 10
	setupSingleIssuer = 1 << 12
	setupDeferTaskrun = 1 << 13
	featSingleMmap    = 1 << 0
	enterGetEvents    = 1 << 0
	offSQRing         = 0
	offSQEs           = 0x10000000
	sqeSize           = 128
	cqeSize           = 16
	OpRead            = 22
	OpURingCmd        = 46
	cmdAreaSize       = 80
	sqeCmdAreaOffset  = 48
)

// SQE is a 128-byte submission queue entry (struct io_uring_sqe with the
// SQE128 command area).
type SQE struct {
	Opcode      uint8
	Flags       uint8
	IOPrio      uint16
	Fd          int32
	CmdOp       uint32 // low half of the union at offset 8: off, addr2, cmd_op
	OffHigh     uint32 // high half of off
	Addr        uint64
	Len         uint32
	OpFlags     uint32
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	SpliceFdIn  int32
	Cmd         [cmdAreaSize]byte // addr3 and beyond: the URING_CMD area
}

// The kernel's layouts, checked at compile time: both sizes must match
// exactly (a negative array length fails either way).
var (
	_ [0]struct{} = [sqeSize - unsafe.Sizeof(SQE{})]struct{}{}
	_ [0]struct{} = [unsafe.Sizeof(SQE{}) - sqeSize]struct{}{}
	_ [0]struct{} = [120 - unsafe.Sizeof(params{})]struct{}{}
	_ [0]struct{} = [unsafe.Sizeof(params{}) - 120]struct{}{}
)

// SetOffset sets the file offset of a read or write; -1 means the file's
// current position.
func (e *SQE) SetOffset(off int64) {
	e.CmdOp, e.OffHigh = uint32(uint64(off)), uint32(uint64(off)>>32)
}

// CQE is a completion queue entry.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

type sqOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqOffsets
	cqOff                                                                  cqOffsets
}

// Ring is one io_uring instance. See the package comment for who may use it.
type Ring struct {
	fd      int
	ringMem []byte // SQ and CQ rings (one mapping: IORING_FEAT_SINGLE_MMAP)
	sqeMem  []byte

	sqHead, sqTail *uint32
	sqMask, sqLen  uint32
	sqeTail        uint32 // entries handed out, published to *sqTail by Enter

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           unsafe.Pointer
}

// New creates a ring with room for sqEntries submissions and cqEntries
// completions, owned by the calling thread (which must be locked).
func New(sqEntries, cqEntries uint32) (*Ring, error) {
	p := params{
		flags:     setupSQE128 | setupSingleIssuer | setupDeferTaskrun | setupCQSize | setupSubmitAll,
		cqEntries: cqEntries,
	}
	fd, _, errno := unix.Syscall(sysSetup, uintptr(sqEntries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd)}
	if p.features&featSingleMmap == 0 {
		r.Close()
		return nil, errors.New("io_uring_setup: kernel without IORING_FEAT_SINGLE_MMAP")
	}
	size := max(uintptr(p.sqOff.array)+uintptr(p.sqEntries)*4, uintptr(p.cqOff.cqes)+uintptr(p.cqEntries)*cqeSize)
	mem, err := unix.Mmap(r.fd, offSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("mmap io_uring rings: %w", err)
	}
	r.ringMem = mem
	sqes, err := unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("mmap io_uring entries: %w", err)
	}
	r.sqeMem = sqes
	at := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	r.sqHead, r.sqTail = at(p.sqOff.head), at(p.sqOff.tail)
	r.sqMask, r.sqLen = *at(p.sqOff.ringMask), p.sqEntries
	r.cqHead, r.cqTail = at(p.cqOff.head), at(p.cqOff.tail)
	r.cqMask = *at(p.cqOff.ringMask)
	r.cqes = unsafe.Pointer(&mem[p.cqOff.cqes])
	// Entries are always filled in ring order, so the indirection
	// array is the identity, set once.
	array := unsafe.Slice((*uint32)(unsafe.Pointer(&mem[p.sqOff.array])), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.sqeTail = atomic.LoadUint32(r.sqTail)
	return r, nil
}

// Close releases the ring; the kernel cancels what is still pending.
func (r *Ring) Close() error {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
		r.sqeMem = nil
	}
	if r.ringMem != nil {
		unix.Munmap(r.ringMem)
		r.ringMem = nil
	}
	if r.fd >= 0 {
		err := unix.Close(r.fd)
		r.fd = -1
		return err
	}
	return nil
}

// NextSQE returns a zeroed submission entry to fill, or nil when the
// submission queue is full (Enter submits what is queued and frees room).
func (r *Ring) NextSQE() *SQE {
	if r.sqeTail-atomic.LoadUint32(r.sqHead) >= r.sqLen {
		return nil
	}
	e := (*SQE)(unsafe.Pointer(&r.sqeMem[uintptr(r.sqeTail&r.sqMask)*sqeSize]))
	*e = SQE{}
	r.sqeTail++
	return e
}

// Queued is how many entries wait to be submitted.
func (r *Ring) Queued() uint32 { return r.sqeTail - atomic.LoadUint32(r.sqHead) }

// Enter submits the queued entries and, with wait > 0, waits until at
// least wait completions are ready. It always runs the ring's deferred
// completion work (DEFER_TASKRUN), so completions appear only here.
func (r *Ring) Enter(wait uint32) error {
	atomic.StoreUint32(r.sqTail, r.sqeTail)
	for {
		// The kernel consumes entries from head to tail; what an
		// interrupted call did not take is submitted by the next.
		n := r.sqeTail - atomic.LoadUint32(r.sqHead)
		// A blocking system call (not RawSyscall): the Go scheduler
		// must be free to run other goroutines while this thread waits.
		_, _, errno := syscall.Syscall6(sysEnter, uintptr(r.fd), uintptr(n), uintptr(wait), enterGetEvents, 0, 0)
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			if wait > 0 && r.Ready() >= wait {
				return nil
			}
		default:
			return fmt.Errorf("io_uring_enter: %w", errno)
		}
	}
}

// Ready is how many completions wait to be reaped.
func (r *Ring) Ready() uint32 {
	return atomic.LoadUint32(r.cqTail) - atomic.LoadUint32(r.cqHead)
}

// Reap calls fn for every completion that is ready, in order, and
// returns how many there were. fn must not keep the CQE.
func (r *Ring) Reap(fn func(*CQE)) int {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail; head++ {
		fn((*CQE)(unsafe.Add(r.cqes, uintptr(head&r.cqMask)*cqeSize)))
		n++
		// Release each entry at once: fn may submit, and a full
		// completion queue would make the kernel buffer the overflow.
		atomic.StoreUint32(r.cqHead, head+1)
	}
	return n
}
