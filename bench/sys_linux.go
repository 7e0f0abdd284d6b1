package bench

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The data path of every client is plain system calls on blocking
// descriptors, so that what is measured is one read(2) or write(2) per
// message and not the Go runtime's poller. Every call retries EINTR: the
// runtime preempts goroutines with SIGURG, and a FUSE request blocked at
// that moment is interrupted; pipefs answers it with EINTR and consumes
// nothing, so repeating the call is exactly right.
//
// A client whose one goroutine does all its I/O makes them as a C program
// does (sysio.raw): without the Go scheduler's system call hand-off, which
// around every call that blocks long — a FUSE request, a read of an empty
// pipe — wakes the runtime's monitor and other threads, and measured as
// more than the IPC itself: with it W5 ran at 16k messages/s, without it
// at 42–44k, and W4's round trip took 133–141 µs instead of 114–117, FIFO
// figures rising too. A client with many blocking goroutines (the parker)
// must keep the hand-off: a raw call holds its P while it blocks.

// sysio makes a client's data-path system calls.
type sysio struct{ raw bool }

func (s sysio) read(fd int, b []byte) (int, error) {
	if !s.raw {
		return unix.Read(fd, b)
	}
	return rawRW(syscall.SYS_READ, fd, b)
}

func (s sysio) write(fd int, b []byte) (int, error) {
	if !s.raw {
		return unix.Write(fd, b)
	}
	return rawRW(syscall.SYS_WRITE, fd, b)
}

func (s sysio) poll(fds []unix.PollFd) (int, error) {
	if !s.raw {
		return unix.Poll(fds, -1)
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_POLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)), ^uintptr(0))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawRW(trap uintptr, fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(p), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// now reads CLOCK_MONOTONIC in nanoseconds. Every process of the machine
// reads the same clock, so a stamp taken in one client can be subtracted
// from a reading in another.
func now() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func openFile(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", path, err)
		}
		return fd, nil
	}
}

// readOnce is one read(2).
func (s sysio) readOnce(fd int, b []byte) (int, error) {
	for {
		n, err := s.read(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return n, err
	}
}

// readFull reads len(b) bytes from a byte stream, or fails at end of file.
func (s sysio) readFull(fd int, b []byte) (int, error) {
	got := 0
	for got < len(b) {
		n, err := s.readOnce(fd, b[got:])
		if err != nil {
			return got, err
		}
		if n == 0 {
			return got, errEOF
		}
		got += n
	}
	return got, nil
}

var errEOF = errors.New("unexpected end of file")

// writeAll writes all of b to a byte stream, continuing short writes.
func (s sysio) writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := s.write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// writeOnce writes b as one message: one write(2) that must take it all.
func (s sysio) writeOnce(fd int, b []byte) error {
	for {
		n, err := s.write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue // pipefs queued nothing of an interrupted write
		}
		if err != nil {
			return err
		}
		if n != len(b) {
			return fmt.Errorf("short write of a message: %d of %d bytes", n, len(b))
		}
		return nil
	}
}

// pollIn waits with poll(2) until fd is readable.
func (s sysio) pollIn(fd int) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := s.poll(fds)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		if n == 1 && fds[0].Revents&unix.POLLIN != 0 {
			return nil
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			return fmt.Errorf("poll: revents %#x", fds[0].Revents)
		}
	}
}

// readSmallFile reads a status file (ctl, pending) to its end.
func readSmallFile(path string) ([]byte, error) {
	fd, err := openFile(path, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := (sysio{}).readOnce(fd, buf)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

// writeSmallFile writes a ctl command with one write(2).
func writeSmallFile(path string, b []byte) error {
	fd, err := openFile(path, unix.O_WRONLY)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := (sysio{}).writeOnce(fd, b); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// residentBytes reads a process's resident set size (VmRSS) from /proc.
func residentBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS of %d: %q", pid, v)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
