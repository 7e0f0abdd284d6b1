package uring

import (
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A read of an eventfd through the ring completes only once the eventfd is
// written, with the bytes read as its result; submissions beyond the
// queue's room wait for Enter.
func TestReadCompletesThroughRing(t *testing.T) {
	runtime.LockOSThread() // SINGLE_ISSUER: one thread submits
	defer runtime.UnlockOSThread()
	r, err := New(4, 16)
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	defer r.Close()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)

	var buf [8]byte
	e := r.NextSQE()
	if e == nil {
		t.Fatal("NextSQE on an empty ring: nil")
	}
	e.Opcode = OpRead
	e.Fd = int32(efd)
	e.Addr = uint64(uintptr(unsafe.Pointer(&buf[0])))
	e.Len = uint32(len(buf))
	e.SetOffset(-1)
	e.UserData = 42
	if got := r.Queued(); got != 1 {
		t.Fatalf("Queued = %d, want 1", got)
	}
	if err := r.Enter(0); err != nil {
		t.Fatal(err)
	}
	if n := r.Ready(); n != 0 {
		t.Fatalf("%d completions before the eventfd was written", n)
	}
	one := [8]byte{7}
	if _, err := unix.Write(efd, one[:]); err != nil {
		t.Fatal(err)
	}
	if err := r.Enter(1); err != nil {
		t.Fatal(err)
	}
	var got []CQE
	r.Reap(func(c *CQE) { got = append(got, *c) })
	if len(got) != 1 || got[0].UserData != 42 || got[0].Res != 8 || buf[0] != 7 {
		t.Fatalf("completions %+v, buffer %v; want one with user data 42 and result 8, buffer [7 0 ...]", got, buf)
	}
	if n := r.Ready(); n != 0 {
		t.Fatalf("%d completions left after Reap", n)
	}

	// Room for four: the fifth waits for a submission.
	for i := range 4 {
		if r.NextSQE() == nil {
			t.Fatalf("NextSQE %d of 4: nil", i)
		}
	}
	if r.NextSQE() != nil {
		t.Fatal("NextSQE on a full queue: not nil")
	}
}
