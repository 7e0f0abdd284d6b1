package pipefs_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"pipefs/netlink"
)

// What a peer — or a stranger at the address — can do to a TCP link's
// pipes: refuse it, put words in its status, choose names for the pipes a
// server makes, be disconnected by a server's pipe, outlive the server's
// listener.

// strangerRefusing listens on addr and answers every connection's first
// frame with an ERROR frame carrying text, until the test ends or stop is
// called. It returns stop.
func strangerRefusing(t *testing.T, addr, text string) (stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				var n [4]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(n[:]))); err != nil {
					return
				}
				frame := binary.BigEndian.AppendUint32(nil, uint32(1+len(text)))
				c.Write(append(append(frame, 0x16), text...)) // ERROR
				io.Copy(io.Discard, c)
			})
		}
	})
	stop = sync.OnceFunc(func() { ln.Close(); wg.Wait() })
	t.Cleanup(stop)
	return stop
}

// A stranger at the address of a `link tcp` with a secret, refusing it
// with an ERROR whose text tries to add status lines: the link keeps
// trying (connecting, with the reason on one line) and meets its partner
// once the stranger is gone.
func TestLinkTCPStrangerRefusalRetried(t *testing.T) {
	secret := writeSecret(t, "shared")
	a, b := mountPipefs(t, "--secret-file", secret), mountPipefs(t, "--secret-file", secret)
	a.mkdir(t, "p")
	b.mkdir(t, "p")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	stop := strangerRefusing(t, addr, "x\noutbox 0\nlink none")
	a.sh(t, `echo "link tcp `+addr+`" > "$M/p/ctl"`)
	want := `tcp ` + addr + ` connecting dialer handshake with ` + addr + `: refused by peer: x\x0aoutbox 0\x0alink none`
	a.waitStatus(t, "p", "link", want)
	a.waitLog(t, `msg="link refused, retrying"`, 1)
	st := a.readFile(t, "p/ctl")
	if n := strings.Count(st, "\noutbox "); n != 1 {
		t.Errorf("status has %d outbox lines; want 1:\n%s", n, st)
	}
	a.sh(t, `echo waited > "$M/p/in"`)
	stop()
	b.sh(t, `echo "link tcp `+addr+`" > "$M/p/ctl"`)
	a.waitStatus(t, "p", "link", "tcp "+addr+" up")
	if got := b.sh(t, `head -n 1 "$M/p/out" 2>/dev/null`); got != "waited\n" {
		t.Errorf("b read %q; want the message written while the stranger refused", got)
	}
}

// A peer asking a listening pipe for a name that is not a plain pipe name
// gets SERVER.N instead; a fine name is used as asked.
func TestListenTCPPeerNames(t *testing.T) {
	srv := mountPipefs(t)
	srv.mkdir(t, "srv")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv.sh(t, `echo "listen tcp `+addr+`" > "$M/srv/ctl"`)
	for _, asked := range []string{"nul\x00name", "two\nlines", "esc\x1b[2J", "tab\there", "del\x7f", "\u202eevil", ".go-fuse-epoll-hack", "..", "ctl", "fine name-1"} {
		l := dialPeer(t, addr, asked)
		got := strings.TrimSuffix(srv.sh(t, `head -n 1 "$M/srv/out" 2>/dev/null`), "\n")
		l.Close() // before the pipe goes, or it would come back for a new one
		want := asked
		if asked != "fine name-1" {
			want = "srv.1"
		}
		if got != want {
			t.Errorf("a peer asking for %q got the pipe %q; want %q", asked, got, want)
		}
		srv.sh(t, `rmdir "$M/`+got+`"`)
	}
}

// dialPeer links an in-process peer, asking for name, to a listening pipe
// at addr, until the test ends.
func dialPeer(t *testing.T, addr, name string) *netlink.Link {
	t.Helper()
	l, err := netlink.NewLink(netlink.LinkConfig{
		Config:   netlink.Config{Name: name},
		Endpoint: newSinkEndpoint(),
		Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go l.Run(context.Background())
	t.Cleanup(func() { l.Close() })
	return l
}

// disconnect on a pipe made by `listen tcp`: the peer reads the BYE; the
// pipe shows `down disconnected: TEXT` until its peer comes back, which a
// pipefs peer does by itself, at once.
func TestListenTCPDisconnectAcceptedPipe(t *testing.T) {
	srv := mountPipefs(t)
	srv.mkdir(t, "srv")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv.sh(t, `echo "listen tcp `+addr+`" > "$M/srv/ctl"`)

	t.Run("a peer that does not come back", func(t *testing.T) {
		peer := rawSession(t, addr, "raw")
		if got := srv.sh(t, `head -n 1 "$M/srv/out" 2>/dev/null`); got != "raw\n" {
			t.Fatalf("srv/out announced %q; want raw", got)
		}
		srv.waitStatusPrefix(t, "raw", "link", "tcp 127.0.0.1:")
		peerAddr := strings.Fields(srv.status(t, "raw")["link"])[1]
		srv.waitStatus(t, "raw", "link", "tcp "+peerAddr+" up")
		srv.sh(t, `echo "disconnect bye now" > "$M/raw/ctl"`)
		if got := peer.next(t); got != "BYE bye now\n" {
			t.Errorf("the peer received %q; want %q", got, "BYE bye now\n")
		}
		peer.wait(t)
		srv.waitStatus(t, "raw", "link", "tcp "+peerAddr+" down disconnected: bye now")
	})

	t.Run("a pipefs peer", func(t *testing.T) {
		c := mountPipefs(t)
		c.mkdir(t, "c")
		c.sh(t, `echo "link tcp `+addr+`" > "$M/c/ctl"`)
		c.waitStatus(t, "c", "link", "tcp "+addr+" up")
		name := strings.TrimSpace(srv.sh(t, `head -n 1 "$M/srv/out" 2>/dev/null`))
		srv.sh(t, `echo "disconnect bye now" > "$M/`+name+`/ctl"`)
		if got := c.sh(t, `head -n 1 "$M/c/out" 2>/dev/null`); got != "BYE bye now\n" {
			t.Fatalf("c read %q; want %q", got, "BYE bye now\n")
		}
		// Nobody writes on c: it comes back by itself, so what the
		// server's pipe sends reaches it.
		srv.sh(t, `echo after-bye > "$M/`+name+`/in"`)
		if got := c.sh(t, `head -n 1 "$M/c/out" 2>/dev/null`); got != "after-bye\n" {
			t.Errorf("c read %q; want after-bye", got)
		}
		if got := srv.sh(t, `cat "$M/srv/pending"`); got != "0\n" {
			t.Errorf("srv/pending %q after the peer came back; want 0 (the same pipe, no new one)", got)
		}
	})
}

// unlink of a listening pipe stops listening; the pipes it made keep
// their connections, and messages go on flowing both ways.
func TestListenTCPUnlinkKeepsAcceptedPipes(t *testing.T) {
	srv, c := mountPipefs(t), mountPipefs(t)
	srv.mkdir(t, "srv")
	c.mkdir(t, "c")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv.sh(t, `echo "listen tcp `+addr+`" > "$M/srv/ctl"`)
	c.sh(t, `echo "link tcp `+addr+`" > "$M/c/ctl"`)
	c.waitStatus(t, "c", "link", "tcp "+addr+" up")
	name := strings.TrimSpace(srv.sh(t, `head -n 1 "$M/srv/out" 2>/dev/null`))
	srv.sh(t, `echo unlink > "$M/srv/ctl"`)
	srv.waitStatus(t, "srv", "link", "none")
	// Nothing listens any more.
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after unlink", addr)
	}
	c.sh(t, `echo to-srv > "$M/c/in"`)
	if got := srv.sh(t, `head -n 1 "$M/`+name+`/out" 2>/dev/null`); got != "to-srv\n" {
		t.Errorf("%s read %q; want to-srv", name, got)
	}
	srv.sh(t, `echo to-c > "$M/`+name+`/in"`)
	if got := c.sh(t, `head -n 1 "$M/c/out" 2>/dev/null`); got != "to-c\n" {
		t.Errorf("c read %q; want to-c", got)
	}
	if got := srv.status(t, name)["link"]; !strings.HasSuffix(got, " up") {
		t.Errorf("%s: link %q; want up", name, got)
	}
	if got := c.status(t, "c")["link"]; got != "tcp "+addr+" up" {
		t.Errorf("c: link %q; want up", got)
	}
}

// rawPeer is an in-process netlink session that dials once and records
// what it receives; it does not reconnect.
type rawPeer struct {
	ep   *recordEndpoint
	done chan error
}

func rawSession(t *testing.T, addr, name string) *rawPeer {
	t.Helper()
	ep := &recordEndpoint{got: make(chan string, 16), room: make(chan struct{}, 1)}
	sess, err := netlink.NewSession(netlink.Config{Name: name}, ep)
	if err != nil {
		t.Fatal(err)
	}
	conn := dialRaw(t, addr)
	if conn == nil {
		t.FailNow()
	}
	p := &rawPeer{ep: ep, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { p.done <- sess.Run(ctx, conn, netlink.Dialer) }()
	t.Cleanup(func() { cancel(); <-p.done; sess.Close() })
	return p
}

func (p *rawPeer) next(t *testing.T) string {
	t.Helper()
	select {
	case m := <-p.ep.got:
		return m
	case <-time.After(failAfter):
		t.Fatalf("the peer received nothing within %v", failAfter)
		return ""
	}
}

// wait waits for the peer's connection to end (and keeps its result for
// the cleanup).
func (p *rawPeer) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(failAfter):
		t.Fatalf("the peer's connection did not end within %v", failAfter)
	}
}

// recordEndpoint has nothing to send and passes on what it receives.
type recordEndpoint struct {
	got  chan string
	room chan struct{}
}

func (e *recordEndpoint) Next(ctx context.Context) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (e *recordEndpoint) Deliver(m []byte) error       { e.got <- string(m); return nil }
func (e *recordEndpoint) Room() int64                  { return 1 << 20 }
func (e *recordEndpoint) RoomChanged() <-chan struct{} { return e.room }
