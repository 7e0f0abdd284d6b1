package netlink

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
)

// tap is a man in the middle that does not hold the secret: it forwards
// every connection made to it to target, frame by frame, and lets the
// test change, drop, record and inject frames on the way.
type tap struct {
	ln     net.Listener
	target string
	// edit, if set, is given every frame before it is forwarded: its
	// connection (0 for the first), direction, and index in that
	// direction (0 for HELLO or CHALLENGE). It returns the frames to
	// forward instead.
	edit func(conn int, fromDialer bool, n int, f []byte) [][]byte

	mu    sync.Mutex
	pairs []*tapPair
	wg    sync.WaitGroup
}

// tapPair is one relayed connection: dialer is the side that dialled the
// tap, acceptor the tap's own connection to target.
type tapPair struct {
	dialer, acceptor net.Conn
	wmu              [2]sync.Mutex // per direction: to the acceptor, to the dialer
	mu               sync.Mutex
	frames           [2][][]byte // forwarded, per direction: from the dialer, from the acceptor
	closed           [2]chan struct{}
}

func startTap(t *testing.T, target string) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{ln: ln, target: target}
	tp.wg.Go(tp.acceptLoop)
	t.Cleanup(tp.close)
	return tp
}

func (tp *tap) addr() string { return tp.ln.Addr().String() }

func (tp *tap) close() {
	tp.ln.Close()
	tp.mu.Lock()
	for _, p := range tp.pairs {
		p.dialer.Close()
		p.acceptor.Close()
	}
	tp.mu.Unlock()
	tp.wg.Wait()
}

func (tp *tap) acceptLoop() {
	for {
		in, err := tp.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", tp.target)
		if err != nil {
			in.Close()
			continue
		}
		p := &tapPair{dialer: in, acceptor: out, closed: [2]chan struct{}{make(chan struct{}), make(chan struct{})}}
		tp.mu.Lock()
		conn := len(tp.pairs)
		tp.pairs = append(tp.pairs, p)
		tp.mu.Unlock()
		tp.wg.Go(func() { tp.pump(p, conn, true) })
		tp.wg.Go(func() { tp.pump(p, conn, false) })
	}
}

// pump forwards the frames of one direction until either side closes.
func (tp *tap) pump(p *tapPair, conn int, fromDialer bool) {
	src, dst, d := p.acceptor, p.dialer, 1
	if fromDialer {
		src, dst, d = p.dialer, p.acceptor, 0
	}
	defer close(p.closed[d])
	defer p.dialer.Close()
	defer p.acceptor.Close()
	r := bufio.NewReader(src)
	for n := 0; ; n++ {
		f, err := readRaw(r)
		if err != nil {
			return
		}
		out := [][]byte{f}
		if tp.edit != nil {
			out = tp.edit(conn, fromDialer, n, bytes.Clone(f))
		}
		p.mu.Lock()
		p.frames[d] = append(p.frames[d], f)
		p.mu.Unlock()
		p.wmu[d].Lock()
		for _, o := range out {
			dst.Write(o)
		}
		p.wmu[d].Unlock()
	}
}

// pair returns connection i, waiting for it.
func (tp *tap) pair(t *testing.T, i int) *tapPair {
	t.Helper()
	var p *tapPair
	waitFor(t, "a connection through the tap", func() bool {
		tp.mu.Lock()
		defer tp.mu.Unlock()
		if len(tp.pairs) > i {
			p = tp.pairs[i]
		}
		return p != nil
	})
	return p
}

// inject writes f to the acceptor (toAcceptor) or to the dialer, between
// two forwarded frames.
func (p *tapPair) inject(f []byte, toAcceptor bool) {
	d, dst := 1, p.dialer
	if toAcceptor {
		d, dst = 0, p.acceptor
	}
	p.wmu[d].Lock()
	defer p.wmu[d].Unlock()
	dst.Write(f)
}

// recorded returns the frames forwarded so far from the dialer or from
// the acceptor.
func (p *tapPair) recorded(fromDialer bool) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fromDialer {
		return append([][]byte(nil), p.frames[0]...)
	}
	return append([][]byte(nil), p.frames[1]...)
}

// waitAcceptorClosed waits until the side that reads what the dialer sends (the
// acceptor) has closed its connection.
func (p *tapPair) waitAcceptorClosed(t *testing.T) {
	t.Helper()
	waitFor(t, "the acceptor to close the connection", func() bool {
		select {
		case <-p.closed[1]:
			return true
		default:
			return false
		}
	})
}

// readRaw reads one whole frame, as it is on the wire.
func readRaw(r *bufio.Reader) ([]byte, error) {
	hdr, err := r.Peek(lengthSize)
	if err != nil {
		return nil, err
	}
	f := make([]byte, lengthSize+int(binary.BigEndian.Uint32(hdr)))
	if _, err := io.ReadFull(r, f); err != nil {
		return nil, err
	}
	return f, nil
}

// rawType is the type of a raw frame.
func rawType(f []byte) frameType { return frameType(f[lengthSize]) }

// logRecorder is a logger for tests that also keeps what it logged.
type logRecorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func recordingLogger(t *testing.T) (*slog.Logger, *logRecorder) {
	rec := &logRecorder{}
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	h := slog.NewTextHandler(io.MultiWriter(w, rec), &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(h), rec
}

func (r *logRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}
