package netlink

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// FIFOLink serves a pipe through two named pipes in a directory, for
// programs that only know FIFOs: lines written into DIR/in become messages
// of the pipe, and the pipe's messages can be read from DIR/out.
//
// Both FIFOs are held open for reading and writing by the link itself. So
// outside programs may open and close them as often as they like without
// the link ever seeing end of file or EPIPE: DIR/in never ends, a writer to
// DIR/out never fails for lack of a reader, and messages nobody reads wait
// in the pipe — all but what fits in the FIFO's own buffer, which the link
// shrinks to one page (4 KiB). A full pipe stops the link reading DIR/in, so
// outside writers block as they would on a slow reader.
type FIFOLink struct {
	dir string
	ep  Endpoint
	log *slog.Logger

	in, out *os.File // the FIFOs, opened O_RDWR
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	sent, received atomic.Uint64
	errMu          sync.Mutex
	err            error // why the link stopped, if it did

	// recent holds the last messages written into dir/out, enough to
	// cover the FIFO's buffer, so that Close can give back, whole, the
	// ones nobody read. Only the write loop touches it until Close.
	recent      [][]byte
	recentBytes int
	line        []byte // an unterminated line read from dir/in
	unsent      []byte // a message taken from the pipe but not written
}

// StartFIFO creates dir and the FIFOs dir/in and dir/out if missing and
// starts serving them for ep. maxMessage bounds a line read from dir/in: a
// longer line is cut into messages of that size.
func StartFIFO(dir string, ep Endpoint, maxMessage int, log *slog.Logger) (*FIFOLink, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("link fifo: %w", err)
	}
	in, err := openFIFO(filepath.Join(dir, "in"))
	if err != nil {
		return nil, err
	}
	out, err := openFIFO(filepath.Join(dir, "out"))
	if err != nil {
		in.Close()
		return nil, err
	}
	// Messages nobody reads should wait in the pipe, not in the FIFO:
	// keep the FIFO's kernel buffer at its smallest, one page.
	if rc, err := out.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 4096) })
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &FIFOLink{dir: dir, ep: ep, log: log, in: in, out: out, cancel: cancel}
	l.wg.Add(2)
	go l.readLoop(ctx, maxMessage)
	go l.writeLoop(ctx)
	return l, nil
}

// openFIFO makes a FIFO at path unless one is there, and opens it for
// reading and writing: such an open never blocks, and holding both ends
// means the link never sees end of file or EPIPE. Go's runtime polls it,
// so Close interrupts a blocked read or write.
func openFIFO(path string) (*os.File, error) {
	if err := syscall.Mkfifo(path, 0o666); err != nil && !errors.Is(err, syscall.EEXIST) {
		return nil, fmt.Errorf("link fifo: mkfifo %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("link fifo: %w", err)
	}
	if st.Mode()&os.ModeNamedPipe == 0 {
		return nil, fmt.Errorf("link fifo: %s exists and is not a FIFO", path)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("link fifo: %w", err)
	}
	return f, nil
}

// readLoop turns lines from dir/in into messages, delivering only within
// the room the pipe has.
func (l *FIFOLink) readLoop(ctx context.Context, maxMessage int) {
	defer l.wg.Done()
	br := bufio.NewReaderSize(l.in, 64<<10)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) && len(line) < maxMessage {
			continue
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			// Closing: keep what was read for drainIn, with what
			// the reader buffered but did not return.
			rest, _ := br.Peek(br.Buffered())
			l.line = append(line, rest...)
			l.stop(ctx, err)
			return
		}
		for len(line) > 0 {
			n := min(len(line), maxMessage)
			if err := l.deliver(ctx, line[:n:n]); err != nil {
				rest, _ := br.Peek(br.Buffered())
				l.line = append(line, rest...)
				l.stop(ctx, err)
				return
			}
			line = line[n:]
		}
		line = nil
	}
}

func (l *FIFOLink) deliver(ctx context.Context, m []byte) error {
	for l.ep.Room() < int64(max(len(m), 1)) {
		select {
		case <-l.ep.RoomChanged():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	msg := make([]byte, len(m))
	copy(msg, m)
	if err := l.ep.Deliver(msg); err != nil {
		return err
	}
	l.received.Add(1)
	return nil
}

// writeLoop writes the pipe's messages into dir/out.
func (l *FIFOLink) writeLoop(ctx context.Context) {
	defer l.wg.Done()
	for {
		m, err := l.ep.Next(ctx)
		if err != nil {
			l.stop(ctx, err)
			return
		}
		l.remember(m)
		if _, err := l.out.Write(m); err != nil {
			// Taken but not written (the link is closing): Close
			// hands it back so that it is not lost.
			l.forgetLast()
			l.stop(ctx, err)
			return
		}
		l.sent.Add(1)
	}
}

func (l *FIFOLink) stop(ctx context.Context, err error) {
	if ctx.Err() != nil || errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
		return // closing
	}
	l.errMu.Lock()
	if l.err == nil {
		l.err = err
		l.log.Warn("fifo link stopped", "dir", l.dir, "err", err)
	}
	l.errMu.Unlock()
}

// Err reports why the link stopped serving, or nil while it serves.
func (l *FIFOLink) Err() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.err
}

// Counts returns the messages written to dir/out and read from dir/in.
func (l *FIFOLink) Counts() (sent, received uint64) {
	return l.sent.Load(), l.received.Load()
}

// Dir is the directory holding the FIFOs.
func (l *FIFOLink) Dir() string { return l.dir }

// fifoBuffer is the most the FIFO's kernel buffer holds: one page after
// F_SETPIPE_SZ, the default 64 KiB if that failed.
const fifoBuffer = 64 << 10

func (l *FIFOLink) remember(m []byte) {
	l.recent = append(l.recent, m)
	l.recentBytes += len(m)
	for len(l.recent) > 1 && l.recentBytes-len(l.recent[0]) >= fifoBuffer {
		l.recentBytes -= len(l.recent[0])
		l.recent[0] = nil
		l.recent = l.recent[1:]
	}
}

func (l *FIFOLink) forgetLast() {
	last := l.recent[len(l.recent)-1]
	l.recentBytes -= len(last)
	l.recent = l.recent[:len(l.recent)-1]
	l.errMu.Lock()
	l.unsent = last
	l.errMu.Unlock()
}

// Close stops serving and waits for the link's goroutines. The FIFOs stay,
// but what sits in their kernel buffers would vanish with the link's
// descriptors, so Close takes it back first. It returns the messages to
// give back to the pipe, oldest first: the ones written into dir/out that
// nobody read (a message an outside reader read part of comes back as its
// unread rest), and one taken but not written. Lines outside writers put
// into dir/in and the link had not read yet are delivered to the pipe.
func (l *FIFOLink) Close() [][]byte {
	l.cancel()
	// Deadlines in the past end blocked reads and writes at once.
	l.in.SetReadDeadline(time.Unix(1, 0))
	l.out.SetWriteDeadline(time.Unix(1, 0))
	l.wg.Wait()

	l.drainIn()
	back := l.drainOut()
	if l.unsent != nil {
		back = append(back, l.unsent)
	}
	l.in.Close()
	l.out.Close()
	return back
}

// readAvailable reads what f holds now, without waiting. The descriptor
// is non-blocking (Go's poller owns it; File.Fd would make it blocking, and
// a read of an empty FIFO the link holds open would then never return).
func readAvailable(f *os.File) []byte {
	var data []byte
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	buf := make([]byte, 64<<10)
	rc.Control(func(fd uintptr) {
		for {
			n, err := unix.Read(int(fd), buf)
			if n <= 0 || err != nil {
				return
			}
			data = append(data, buf[:n]...)
		}
	})
	return data
}

// drainIn delivers what outside writers left in dir/in.
func (l *FIFOLink) drainIn() {
	data := append(l.line, readAvailable(l.in)...)
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			i = len(data) - 1
		}
		m := make([]byte, i+1)
		copy(m, data)
		if l.ep.Deliver(m) == nil {
			l.received.Add(1)
		}
		data = data[i+1:]
	}
}

// drainOut takes back what nobody read from dir/out and matches it, from
// the newest message back, to the messages written.
func (l *FIFOLink) drainOut() [][]byte {
	unread := len(readAvailable(l.out))
	i := len(l.recent)
	for i > 0 && unread > 0 {
		i--
		m := l.recent[i]
		if len(m) > unread {
			l.recent[i] = m[len(m)-unread:] // read in part: its rest
			unread = 0
			break
		}
		unread -= len(m)
		l.sent.Add(^uint64(0)) // not delivered after all
	}
	return l.recent[i:]
}
