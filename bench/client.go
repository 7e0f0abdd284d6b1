package bench

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"golang.org/x/sys/unix"
)

// A client is the pipefs binary started again by the driver to do one
// side of a workload (`pipefs bench client ROLE [flags]`). A client
// that needs time to get into position (open its files) prints "ready";
// every client ends by printing one JSON line with its result.

// ClientCommand is the hidden argument after `pipefs bench` that makes
// the binary a client; Options.ClientArgs must lead to ClientMain.
const ClientCommand = "client"

// transport is what a workload runs over.
type transport string

const (
	tPipefs transport = "pipefs"
	tFIFO   transport = "fifo"
	tSocket transport = "socket" // AF_UNIX SOCK_SEQPACKET socketpair
)

// stream reports whether the transport is a byte stream, whose reader
// must reassemble fixed-size records itself.
func (t transport) stream() bool { return t == tFIFO }

// clientConfig holds the flags of every role; each role uses a few.
type clientConfig struct {
	sys           sysio // raw system calls unless the role blocks in many goroutines
	kind          transport
	send, recv    string // paths to write to and read from
	sendFD        int    // inherited descriptors, -1 if none
	recvFD        int
	ackFD         int
	size          int
	duration      time.Duration
	count         int64
	id            int
	markers       int
	ids           bool
	order         bool
	buf           int
	linesPerWrite int
	gap           time.Duration
	poll          bool
	mount         string
	prefix        string
	n             int
	numbered      bool
	ctl           string
	op            string

	out io.Writer // to the driver
}

var clientRoles = map[string]func(*clientConfig) (any, error){
	"writer":     runWriter,
	"reader":     runReader,
	"linewriter": runLineWriter,
	"linereader": runLineReader,
	"ping":       runPing,
	"pong":       runPong,
	"pollwriter": runPollWriter,
	"pollreader": runPollReader,
	"fsop":       runFSOp,
	"parker":     runParker,
}

// ClientMain runs one client: args are the role and its flags. The
// client's "ready" line and result go to out, which the driver reads.
func ClientMain(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("bench client: no role")
	}
	role, ok := clientRoles[args[0]]
	if !ok {
		return fmt.Errorf("bench client: unknown role %q", args[0])
	}
	// The parker blocks a read in each of many goroutines; every other
	// role does its I/O from one (see sysio).
	c := &clientConfig{sys: sysio{raw: args[0] != "parker"}}
	fl := flag.NewFlagSet("bench client "+args[0], flag.ContinueOnError)
	fl.StringVar((*string)(&c.kind), "kind", string(tPipefs), "pipefs, fifo or socket")
	fl.StringVar(&c.send, "send", "", "path to write messages to")
	fl.StringVar(&c.recv, "recv", "", "path to read messages from")
	fl.IntVar(&c.sendFD, "send-fd", -1, "inherited descriptor to write to")
	fl.IntVar(&c.recvFD, "recv-fd", -1, "inherited descriptor to read from")
	fl.IntVar(&c.ackFD, "ack-fd", -1, "inherited descriptor of the acknowledgement pipe")
	fl.IntVar(&c.size, "size", 64, "message size in bytes")
	fl.DurationVar(&c.duration, "duration", time.Second, "how long to send")
	fl.Int64Var(&c.count, "count", 0, "messages to send instead of a duration")
	fl.IntVar(&c.id, "id", 0, "writer id")
	fl.IntVar(&c.markers, "markers", 1, "end markers to send or await")
	fl.BoolVar(&c.ids, "ids", false, "record every message id, to check exactly-once delivery")
	fl.BoolVar(&c.order, "order", false, "check that messages arrive in order")
	fl.IntVar(&c.buf, "buf", 128<<10, "read buffer of a line reader")
	fl.IntVar(&c.linesPerWrite, "lines-per-write", 2048, "lines in one write of a line writer")
	fl.BoolVar(&c.poll, "poll", false, "pong: wait for each message in poll(2)")
	fl.DurationVar(&c.gap, "gap", time.Millisecond, "pause before each timed message of a poll writer")
	fl.StringVar(&c.mount, "mount", "", "the pipefs mount point")
	fl.StringVar(&c.prefix, "prefix", "", "pipe name, or prefix of numbered pipe names")
	fl.IntVar(&c.n, "n", 1, "number of pipes")
	fl.BoolVar(&c.numbered, "numbered", false, "pipe names are --prefix followed by a number, even for one")
	fl.StringVar(&c.ctl, "ctl", "", "commands written to each new pipe's ctl")
	fl.StringVar(&c.op, "op", "", "fsop: info, mkdir, rmdir, pending, waitparked, waitlink")
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	if c.size < minMessage {
		return fmt.Errorf("--size %d: messages need at least %d bytes", c.size, minMessage)
	}
	c.out = out
	res, err := role(c)
	if err != nil {
		return fmt.Errorf("bench client %s: %w", args[0], err)
	}
	return json.NewEncoder(out).Encode(res)
}

// signalReady tells the driver that the client is in position.
func (c *clientConfig) signalReady() {
	io.WriteString(c.out, "ready\n")
}

// openSend opens the side the client writes to.
func (c *clientConfig) openSend() (int, error) {
	if c.sendFD >= 0 {
		return c.sendFD, unix.SetNonblock(c.sendFD, false)
	}
	if c.send == "" {
		return -1, errors.New("no --send or --send-fd")
	}
	if c.kind == tFIFO {
		return openFile(c.send, unix.O_RDWR)
	}
	return openFile(c.send, unix.O_WRONLY)
}

// openRecv opens the side the client reads from. Both sides of a FIFO
// are opened for reading and writing: an open then never waits for the
// other side (a pong opening its reply FIFO before the ping exists), and
// a reader never sees end of file between writers.
func (c *clientConfig) openRecv() (int, error) {
	if c.recvFD >= 0 {
		return c.recvFD, unix.SetNonblock(c.recvFD, false)
	}
	if c.recv == "" {
		return -1, errors.New("no --recv or --recv-fd")
	}
	if c.kind == tFIFO {
		return openFile(c.recv, unix.O_RDWR)
	}
	return openFile(c.recv, unix.O_RDONLY)
}

// writeMsg sends one message with one write(2) (a FIFO may take a large
// record in pieces).
func (c *clientConfig) writeMsg(fd int, m []byte) error {
	if c.kind.stream() {
		return c.sys.writeAll(fd, m)
	}
	return c.sys.writeOnce(fd, m)
}

// readMsg receives one message of c.size bytes into buf: one read(2) for
// pipefs and the socket, which keep message boundaries; a FIFO is a byte
// stream, so its reader reads exactly one record's bytes.
func (c *clientConfig) readMsg(fd int, buf []byte) ([]byte, error) {
	if c.kind.stream() {
		n, err := c.sys.readFull(fd, buf[:c.size])
		return buf[:n], err
	}
	n, err := c.sys.readOnce(fd, buf)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errEOF
	}
	if n != c.size {
		return nil, fmt.Errorf("read returned %d bytes, want one message of %d", n, c.size)
	}
	return buf[:n], nil
}
