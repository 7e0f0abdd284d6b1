package fs

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"pipefs/pipe"
)

// Regression tests for defects found in review, driven through the
// request handlers with a socket pair standing in for /dev/fuse.

// reply is one message the server wrote to its device.
type reply struct {
	unique  uint64
	errno   syscall.Errno // 0, or the errno of an error reply
	payload []byte
}

// fakeDevice stands in for /dev/fuse: the server writes replies to one end
// of a SOCK_SEQPACKET pair (one reply per message, like the device), and
// the test reads them from the other.
type fakeDevice struct {
	mu      sync.Mutex
	cond    *sync.Cond
	replies map[uint64][]reply
}

func attachFakeDevice(t *testing.T, s *Server) *fakeDevice {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	s.fd = fds[0]
	d := &fakeDevice{replies: map[uint64][]reply{}}
	d.cond = sync.NewCond(&d.mu)
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, err := unix.Read(fds[1], buf)
			if err != nil || n == 0 {
				return
			}
			if n < outHeaderSize {
				continue
			}
			r := reply{unique: ne.Uint64(buf[8:]), payload: append([]byte(nil), buf[outHeaderSize:n]...)}
			if e := int32(ne.Uint32(buf[4:])); e < 0 {
				r.errno = syscall.Errno(-e)
			}
			d.mu.Lock()
			d.replies[r.unique] = append(d.replies[r.unique], r)
			d.cond.Broadcast()
			d.mu.Unlock()
		}
	}()
	// Only the reading end is closed: a server goroutine stuck by a
	// demonstrated deadlock may still hold the writing end.
	t.Cleanup(func() { unix.Shutdown(fds[1], unix.SHUT_RDWR) })
	return d
}

// wait returns the replies to unique once there is one, or nil after
// timeout.
func (d *fakeDevice) wait(unique uint64, timeout time.Duration) []reply {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() { d.mu.Lock(); d.cond.Broadcast(); d.mu.Unlock() })
	defer timer.Stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.replies[unique]) == 0 && time.Now().Before(deadline) {
		d.cond.Wait()
	}
	return d.replies[unique]
}

// openFile opens a file of pipe pn as the kernel would.
func openFile(t *testing.T, s *Server, pn *pipeNode, name string, flags uint32) uint64 {
	t.Helper()
	n, errno := s.tree.lookup(pn.dirIno, name)
	if errno != 0 {
		t.Fatalf("lookup(%s) = %v", name, errno)
	}
	fh, _, errno := s.open(n, flags)
	if errno != 0 {
		t.Fatalf("open(%s) = %v", name, errno)
	}
	return fh
}

// Finding 1. interrupt (and afterPark) call pk.cancel() with the park
// table's shard lock held. For a write, pipe.CancelWrite settles the queue
// and runs the completions of the writers behind the withdrawn one in the
// calling goroutine; their WriteDone calls leavePark, which takes the
// shard lock of *their* unique. When that is the same shard (uniques 32k
// apart), the request loop goroutine deadlocks on itself; every later
// request that touches the shard blocks the other loop too, and the
// interrupted writer stays in the kernel forever. Reproduced on a real
// mount with 40 parked writers and one signalled writer.
func TestRegressionInterruptOfParkedWriteDeadlocks(t *testing.T) {
	s := newTestServer(t, Options{})
	dev := attachFakeDevice(t, s)
	pn := newTestPipe(t, s, "p")
	if err := pn.p.SetSettings(pipe.Settings{Mode: pipe.Lines, Capacity: 10, MaxMessage: 10}); err != nil {
		t.Fatal(err)
	}
	fh := openFile(t, s, pn, nameIn, syscall.O_WRONLY)
	if _, err := pn.p.NewWriter().Write([]byte("aaaaaa\n"), true, nil, nil); err != nil {
		t.Fatal(err)
	}
	const a, b = 100, 132 // (a>>1)%16 == (b>>1)%16: one shard
	if s.parks.shard(a) != s.parks.shard(b) {
		t.Fatalf("uniques %d and %d are meant to share a shard", a, b)
	}
	s.serveWrite(a, readIn{Fh: fh}, []byte("bbbbb\n"), false) // 7+6 > 10: parks
	s.serveWrite(b, readIn{Fh: fh}, []byte("c\n"), false)     // would fit, but queues behind a
	if st := pn.p.Stats(); st.Writers != 2 {
		t.Fatalf("parked writers = %d; want 2", st.Writers)
	}

	done := make(chan struct{})
	go func() { s.interrupt(a); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatalf("INTERRUPT of parked write %d did not return: the request loop deadlocked on its own park-table shard lock", a)
	}
	if r := dev.wait(a, time.Second); len(r) != 1 || r[0].errno != syscall.EINTR {
		t.Errorf("replies to the interrupted write = %+v; want one EINTR", r)
	}
	if r := dev.wait(b, time.Second); len(r) != 1 || r[0].errno != 0 || ne.Uint32(r[0].payload) != 2 {
		t.Errorf("replies to the write behind it = %+v; want one of 2 bytes", r)
	}
}

// Finding 2. interrupt() may run between enterPark and the engine parking
// the request; pipe.CancelRead/CancelWrite then read req.q without the
// queue lock while Reader.Read/Writer.Write write *req under it. The
// outcome is right (the mark is honoured by afterPark), but it is a data
// race that -race reports.
func TestRegressionInterruptRacesPark(t *testing.T) {
	s := newTestServer(t, Options{})
	dev := attachFakeDevice(t, s)
	pn := newTestPipe(t, s, "p")
	fh := openFile(t, s, pn, nameOut, syscall.O_RDONLY)
	sc := &loopScratch{}
	for i := range 2000 {
		u := uint64(1000 + 2*i)
		var wg sync.WaitGroup
		wg.Add(1)
		spinning := make(chan struct{})
		go func() {
			defer wg.Done()
			close(spinning)
			// Interrupt as soon as the request is in the park table, as
			// the other loop goroutine can: from then until afterPark.
			for !inParkTable(s, u) {
			}
			s.interrupt(u)
		}()
		<-spinning
		s.serveRead(u, readIn{Fh: fh, Size: 10}, sc)
		wg.Wait()
		// Like the kernel after EAGAIN: repeat the INTERRUPT until the
		// read is answered.
		for len(dev.wait(u, 10*time.Millisecond)) == 0 {
			s.interrupt(u)
		}
		if r := dev.wait(u, time.Second); len(r) != 1 || r[0].errno != syscall.EINTR {
			t.Fatalf("read %d: replies %+v; want one EINTR", u, r)
		}
	}
}

func inParkTable(s *Server, unique uint64) bool {
	sh := s.parks.shard(unique)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[unique] != nil
}

// Finding 3. docs/files.md: files cannot be renamed (EPERM). `mv MNT/ctl
// MNT/x` reaches Rename with the root as both directories and fails with
// ENOENT, since "ctl" is not in the pipe map.
func TestRegressionRenameRootCtl(t *testing.T) {
	s := newTestServer(t, Options{})
	fsys := &fileSystem{RawFileSystem: fuse.NewDefaultRawFileSystem(), s: s}
	in := &fuse.RenameIn{InHeader: fuse.InHeader{NodeId: rootIno}, Newdir: rootIno}
	if st := fsys.Rename(nil, in, nameCtl, "x"); st != fuse.EPERM {
		t.Errorf("rename(ctl, x) = %v; want EPERM", st)
	}
}

// Finding 4 (cosmetic). Refusals read as their reason alone (commit
// 0f3d941), but a refused `clear` reads "pipe: invalid argument: clear
// takes no argument" in the ctl status.
func TestRegressionClearReason(t *testing.T) {
	s := newTestServer(t, Options{})
	pn := newTestPipe(t, s, "p")
	err := s.control(pn, []byte("clear now\n"))
	if err == nil || err.Error() != "clear takes no argument" {
		t.Errorf("control(clear now) = %v; want the reason alone, %q", err, "clear takes no argument")
	}
}
