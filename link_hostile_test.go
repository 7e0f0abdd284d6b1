package pipefs_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pipefs/netlink"
)

// Strangers and broken peers against a daemon that listens with a secret:
// each is refused or cut off, logged, and costs only its own connection;
// the daemon keeps serving the mount and accepting real peers, and gives
// every descriptor back.

func TestLinkHostilePeers(t *testing.T) {
	right, wrong := writeSecret(t, "right"), writeSecret(t, "wrong")
	srv := mountPipefs(t, "--secret-file", right, "--link-handshake-timeout", "1s")
	srv.mkdir(t, "srv")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv.sh(t, `echo "listen tcp `+addr+`" > "$M/srv/ctl"`)
	baseline := fdCount(t, srv)

	// A pipefs peer with the wrong secret: refused before any message
	// moves, logged on both sides; it goes on trying with backoff, since
	// a refusal before the peer has proved the secret may be a
	// stranger's, and shows why.
	wrongPeer := mountPipefs(t)
	wrongPeer.mkdir(t, "p")
	wrongPeer.sh(t, `echo "link tcp `+addr+` secret=`+wrong+`" > "$M/p/ctl"`)
	wrongPeer.waitStatus(t, "p", "link", "tcp "+addr+" connecting dialer handshake with "+addr+": refused by peer: authentication failed: wrong secret")
	srv.waitLog(t, "wrong secret", 2)
	wrongPeer.waitLog(t, `level=WARN msg="link refused, retrying"`, 1)
	// A write waits on this side; nothing is sent.
	wrongPeer.sh(t, `echo injected > "$M/p/in"`)
	if st := wrongPeer.status(t, "p"); st["outbox"] != "1" || st["sent"] != "0" {
		t.Errorf("wrong secret: outbox %s, sent %s; want the message waiting, none sent", st["outbox"], st["sent"])
	}

	// Raw strangers, all at once. The test never closes them: the daemon
	// must let each go by itself, and log why.
	var hostile []net.Conn
	for _, c := range []struct {
		name string
		send []byte
	}{
		{"garbage", randomBytes(t, 4096)},
		{"unknown frame type", []byte{0, 0, 0, 5, 0x00, 'j', 'u', 'n', 'k'}},
		{"truncated frame", helloFrame(true, 2)[:20]},
		{"oversized frame", []byte{0x7f, 0xff, 0xff, 0xff, 0x01}},
		{"silent", nil},
		{"hello, then never reads", helloFrame(true, 2)},
		{"hello without a secret, never reads", helloFrame(false, 2)},
		{"hello of protocol version 1 (no frame tags)", helloFrame(true, 1)},
	} {
		conn := dialRaw(t, addr)
		if conn == nil {
			t.FailNow()
		}
		if _, err := conn.Write(c.send); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		hostile = append(hostile, conn)
	}
	for _, why := range []string{"frame too large", "malformed frame: unknown frame type", "the peer has no secret", "i/o timeout", "peer speaks up to version 1, this side needs version 2"} {
		srv.waitLog(t, why, 1)
	}
	srv.waitFDs(t, baseline)

	// A thousand connections at once: the daemon runs a bounded number of
	// handshakes and closes the rest at once. (They are dialled 100 at a
	// time, so that the kernel's queue of half-open connections, not the
	// daemon, is never what holds them up.)
	const flood = 1000
	var mu sync.Mutex
	var wg sync.WaitGroup
	dialing := make(chan struct{}, 100)
	for range flood {
		dialing <- struct{}{}
		wg.Go(func() {
			defer func() { <-dialing }()
			if conn := dialRaw(t, addr); conn != nil {
				mu.Lock()
				hostile = append(hostile, conn)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// Meanwhile the mount serves as ever.
	srv.mkdir(t, "local")
	if got := srv.sh(t, `echo still-here > "$M/local/in"; head -n 1 "$M/local/out" 2>/dev/null; cat "$M/srv/pending"`); got != "still-here\n0\n" {
		t.Errorf("during the flood the mount answered %q; want the local message and srv/pending 0", got)
	}
	srv.waitLog(t, "too many handshakes in progress", 1)
	srv.waitFDs(t, baseline)

	// An authenticated peer that stops reading while the daemon has
	// plenty to send: its pipe fills and its writers get EAGAIN, as with
	// a full local pipe; the rest of the mount is unaffected.
	stuck := stalledPeer(t, addr, right, "stuck")
	if got := srv.sh(t, `head -n 1 "$M/srv/out" 2>/dev/null`); got != "stuck\n" {
		t.Fatalf("srv/out announced %q; want the authenticated peer's pipe, stuck", got)
	}
	stuck.stopReading()
	fillUntilEAGAIN(t, srv.path("stuck/in"))
	if got := srv.sh(t, `echo still-here > "$M/local/in"; head -n 1 "$M/local/out" 2>/dev/null`); got != "still-here\n" {
		t.Errorf("with a peer that does not read, the mount answered %q", got)
	}
	stuck.close()
	srv.waitFDs(t, baseline)

	// A real peer still gets through the same listener, both ways.
	good := mountPipefs(t)
	good.mkdir(t, "p")
	good.sh(t, `echo "link tcp `+addr+` secret=`+right+`" > "$M/p/ctl"`)
	good.waitStatus(t, "p", "link", "tcp "+addr+" up")
	name := strings.TrimSpace(srv.sh(t, `head -n 1 "$M/srv/out" 2>/dev/null`))
	good.sh(t, `echo to-srv > "$M/p/in"`)
	if got := srv.sh(t, `head -n 1 "$M/`+name+`/out" 2>/dev/null`); got != "to-srv\n" {
		t.Errorf("%s read %q; want to-srv", name, got)
	}
	srv.sh(t, `echo to-peer > "$M/`+name+`/in"`)
	if got := good.sh(t, `head -n 1 "$M/p/out" 2>/dev/null`); got != "to-peer\n" {
		t.Errorf("the peer read %q; want to-peer", got)
	}

	// Only authenticated peers made pipes; nobody injected a message.
	entries, err := os.ReadDir(srv.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"ctl", "local", name, "srv", "stuck"}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("the mount holds %q; want %q", names, want)
	}
	// And the refused peer is still trying (its last attempt may have
	// met the flood rather than the refusal); it warned once, not at
	// every try.
	if got := wrongPeer.status(t, "p")["link"]; !strings.HasPrefix(got, "tcp "+addr+" connecting") {
		t.Errorf("wrong secret: link %q at the end; want it still connecting", got)
	}
	if n := strings.Count(wrongPeer.daemon.stderr.String(), `msg="link refused, retrying"`); n != 1 {
		t.Errorf("the refused peer warned %d times; want once", n)
	}
	for _, c := range hostile {
		c.Close()
	}
}

// Without a secret, links and listeners off this host's loopback are
// refused when the command is checked, with the rule in the error line;
// nothing is dialled or bound.
func TestLinkTCPRefusesOffLoopbackWithoutSecret(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "p")
	host, _ := os.Hostname()
	refused := []string{
		"link tcp 192.0.2.1:9",
		"link tcp 10.1.2.3:9",
		"link tcp [2001:db8::1]:9",
		"link tcp example.com:9",
		// Only "localhost" counts among names, even one that resolves to
		// loopback here: what a name resolves to is up to DNS.
		"link tcp " + net.JoinHostPort(host, "9"),
		"listen tcp :9",
		"listen tcp 0.0.0.0:9",
		"listen tcp [::]:9",
	}
	if ip := lanAddress(); ip != "" {
		refused = append(refused, "listen tcp "+net.JoinHostPort(ip, "9"), "link tcp "+net.JoinHostPort(ip, "9"))
	}
	for _, cmd := range refused {
		m.shFails(t, `echo "`+cmd+`" > "$M/p/ctl"`)
		st := m.readFile(t, "p/ctl")
		if got := linkField(st, "error"); !strings.Contains(got, "not a loopback address") {
			t.Errorf("%q: error line %q; want it to explain the loopback rule", cmd, got)
		}
		if got := linkField(st, "link"); got != "none" {
			t.Errorf("%q: link %q; want none", cmd, got)
		}
	}
	// Loopback in any spelling is fine.
	for _, target := range []string{"127.0.0.2", "[::1]", "localhost"} {
		m.sh(t, `echo "link tcp `+target+`:9 1s" > "$M/p/ctl"; echo unlink > "$M/p/ctl"`)
	}
}

func writeSecret(t *testing.T, secret string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// helloFrame is a well-formed HELLO (docs/protocol.md) of the given
// protocol version, with or without the flag that says the sender has a
// secret.
func helloFrame(secret bool, version uint16) []byte {
	body := []byte("PFSL")
	body = binary.BigEndian.AppendUint16(body, version)
	flags := uint16(0)
	if secret {
		flags = 1
	}
	body = binary.BigEndian.AppendUint16(body, flags)
	var nonce [32 + 16]byte // nonce and session ID
	rand.Read(nonce[:])
	body = append(body, nonce[:]...)
	body = binary.BigEndian.AppendUint32(body, 1024)
	body = append(body, 0) // no name
	frame := binary.BigEndian.AppendUint32(nil, uint32(1+len(body)))
	return append(append(frame, 0x01), body...)
}

// dialRaw connects to addr; on failure it marks the test failed and
// returns nil (it may run in any goroutine).
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, failAfter)
	if err != nil {
		t.Errorf("dial %s: %v", addr, err)
		return nil
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// fdCount is how many descriptors the daemon holds.
func fdCount(t *testing.T, m *mount) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", m.daemon.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("daemon's descriptors: %v", err)
	}
	return len(fds)
}

// waitFDs waits until the daemon holds no more descriptors than baseline.
func (m *mount) waitFDs(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for {
		n := fdCount(t, m)
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon still holds %d descriptors after %v; %d before the strangers came", n, failAfter, baseline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLog waits until the daemon's log mentions text n times.
func (m *mount) waitLog(t *testing.T, text string, n int) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for strings.Count(m.daemon.stderr.String(), text) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's log mentions %q %d times within %v; want %d", text, strings.Count(m.daemon.stderr.String(), text), failAfter, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lanAddress is a non-loopback IPv4 address of this machine, or "".
func lanAddress() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	return ""
}

// fillUntilEAGAIN writes to a pipe's in without blocking until it is full.
func fillUntilEAGAIN(t *testing.T, path string) {
	t.Helper()
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	line := []byte(strings.Repeat("x", 1023) + "\n")
	chunk := slices.Repeat(line, 64)
	deadline := time.Now().Add(failAfter)
	for {
		_, err := syscall.Write(fd, chunk)
		if err == syscall.EAGAIN {
			return
		}
		if err != nil && err != syscall.EINTR {
			t.Fatalf("write %s: %v", path, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s took writes for %v without getting full", path, failAfter)
		}
	}
}

// stalled is a peer, made with package netlink in this process, that
// proves the secret and then stops reading its connection.
type stalled struct {
	cancel  context.CancelFunc
	done    chan struct{}
	conn    *stallConn
	session *netlink.Session
}

func stalledPeer(t *testing.T, addr, secretFile, name string) *stalled {
	t.Helper()
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := netlink.NewSession(netlink.Config{Secret: []byte(strings.TrimSpace(string(secret))), Name: name}, newSinkEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	raw := dialRaw(t, addr)
	if raw == nil {
		t.FailNow()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &stalled{cancel: cancel, done: make(chan struct{}), session: sess,
		conn: &stallConn{Conn: raw, stop: make(chan struct{}), closed: make(chan struct{})}}
	go func() {
		defer close(s.done)
		sess.Run(ctx, s.conn, netlink.Dialer)
	}()
	t.Cleanup(s.close)
	return s
}

func (s *stalled) stopReading() { s.conn.stopOnce.Do(func() { close(s.conn.stop) }) }

// close cuts the connection and waits for the session to end.
func (s *stalled) close() {
	s.cancel()
	s.conn.Close()
	<-s.done
	s.session.Close()
}

// stallConn stops returning what it reads once stop is closed, so that
// the kernel's buffers fill and the peer's writes block.
type stallConn struct {
	net.Conn
	stop      chan struct{}
	stopOnce  sync.Once
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *stallConn) Read(p []byte) (int, error) {
	select {
	case <-c.stop:
		<-c.closed
		return 0, net.ErrClosed
	default:
	}
	return c.Conn.Read(p)
}

func (c *stallConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// sinkEndpoint is a netlink.Endpoint with nothing to send and endless
// room: whatever arrives is dropped.
type sinkEndpoint struct{ room chan struct{} }

func newSinkEndpoint() *sinkEndpoint { return &sinkEndpoint{room: make(chan struct{}, 1)} }

func (e *sinkEndpoint) Next(ctx context.Context) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (e *sinkEndpoint) Deliver([]byte) error         { return nil }
func (e *sinkEndpoint) Room() int64                  { return 1 << 30 }
func (e *sinkEndpoint) RoomChanged() <-chan struct{} { return e.room }
