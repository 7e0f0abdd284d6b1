package bench

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// channel is one one-way path for messages over a transport: a pipefs
// pipe (its `in` and `out`), a FIFO, or a SEQPACKET socketpair whose
// first end sends and second end receives.
type channel struct {
	t    transport
	path string // pipefs: the pipe's directory; FIFO: the FIFO
	// peer, for pipefs over a link, is the directory of the linked pipe
	// on the other mount: writers write to path's `in`, readers read
	// peer's `out`.
	peer string
	sock [2]*os.File
}

// newChannel makes a channel for one measurement. pipefs pipes are made
// by the workload beforehand (they outlive the round); FIFOs and sockets
// are made here.
func (e *env) newChannel(t transport, pipeDir string) (*channel, error) {
	ch := &channel{t: t}
	switch t {
	case tPipefs:
		ch.path = pipeDir
	case tFIFO:
		e.seq++
		ch.path = filepath.Join(e.tmp, fmt.Sprintf("fifo%d", e.seq))
		if err := unix.Mkfifo(ch.path, 0o600); err != nil {
			return nil, fmt.Errorf("mkfifo: %w", err)
		}
	case tSocket:
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("socketpair: %w", err)
		}
		ch.sock[0] = os.NewFile(uintptr(fds[0]), "send")
		ch.sock[1] = os.NewFile(uintptr(fds[1]), "recv")
	}
	return ch, nil
}

// close releases the driver's hold: once the clients have their copies
// of a socket's descriptors, and after the measurement for a FIFO.
func (ch *channel) close() {
	switch ch.t {
	case tFIFO:
		os.Remove(ch.path)
	case tSocket:
		ch.sock[0].Close()
		ch.sock[1].Close()
	}
}

func (ch *channel) addSend(s *spec) {
	s.flag("kind", ch.t)
	switch ch.t {
	case tPipefs:
		s.flag("send", filepath.Join(ch.path, "in"))
	case tFIFO:
		s.flag("send", ch.path)
	case tSocket:
		s.file("send-fd", ch.sock[0])
	}
}

func (ch *channel) addRecv(s *spec) {
	s.flag("kind", ch.t)
	switch ch.t {
	case tPipefs:
		dir := ch.path
		if ch.peer != "" {
			dir = ch.peer
		}
		s.flag("recv", filepath.Join(dir, "out"))
	case tFIFO:
		s.flag("recv", ch.path)
	case tSocket:
		s.file("recv-fd", ch.sock[1])
	}
}
