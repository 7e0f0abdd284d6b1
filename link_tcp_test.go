package pipefs_test

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"
)

// TCP links between two daemons on this machine, over loopback.

// freePort returns a loopback TCP port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestLinkTCPBothWaysEitherOrder(t *testing.T) {
	for _, order := range []string{"a first", "b first"} {
		t.Run(order, func(t *testing.T) {
			a, b := mountPipefs(t), mountPipefs(t)
			a.mkdir(t, "p")
			b.mkdir(t, "p")
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			first, second := a, b
			if order == "b first" {
				first, second = b, a
			}
			first.sh(t, `echo "link tcp `+addr+`" > "$M/p/ctl"`)
			second.sh(t, `echo "link tcp `+addr+`" > "$M/p/ctl"`)
			a.waitStatus(t, "p", "link", "tcp "+addr+" up")
			b.waitStatus(t, "p", "link", "tcp "+addr+" up")

			a.sh(t, `echo from-a > "$M/p/in"`)
			if got := b.sh(t, `head -n 1 "$M/p/out" 2>/dev/null`); got != "from-a\n" {
				t.Fatalf("b read %q; want from-a", got)
			}
			b.sh(t, `echo from-b > "$M/p/in"`)
			if got := a.sh(t, `head -n 1 "$M/p/out" 2>/dev/null`); got != "from-b\n" {
				t.Fatalf("a read %q; want from-b", got)
			}
			st := a.status(t, "p")
			if st["sent"] != "1" || st["received"] != "1" {
				t.Fatalf("a's status sent %s received %s; want 1 and 1", st["sent"], st["received"])
			}
		})
	}
}

func TestLinkTCPTimeoutKeepsMessages(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "p")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	m.sh(t, `echo "link tcp `+addr+` 300ms" > "$M/p/ctl"`)
	m.sh(t, `echo kept > "$M/p/in"`) // written while nobody came
	m.waitStatusPrefix(t, "p", "link", "tcp "+addr+" failed")
	// Nothing lost: unlink gives the waiting message to local readers.
	m.sh(t, `echo unlink > "$M/p/ctl"`)
	if got := m.sh(t, `head -n 1 "$M/p/out" 2>/dev/null`); got != "kept\n" {
		t.Fatalf("after the timeout and unlink, out gave %q; want kept", got)
	}
}

func TestListenTCPThreeClients(t *testing.T) {
	srv := mountPipefs(t)
	srv.mkdir(t, "srv")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv.sh(t, `echo "listen tcp `+addr+`" > "$M/srv/ctl"`)
	var clients []*mount
	for i := 0; i < 3; i++ {
		c := mountPipefs(t)
		c.mkdir(t, "c")
		c.sh(t, `echo "link tcp `+addr+`" > "$M/c/ctl"`)
		c.waitStatus(t, "c", "link", "tcp "+addr+" up")
		clients = append(clients, c)
	}
	// accept(): one name per connection on the server pipe's out.
	var names []string
	for i := 0; i < 3; i++ {
		names = append(names, strings.TrimSpace(srv.sh(t, `head -n 1 "$M/srv/out" 2>/dev/null`)))
	}
	sort.Strings(names)
	if want := []string{"srv.1", "srv.2", "srv.3"}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("names on srv/out = %q; want %q", names, want)
	}
	// Each client talks to its own pipe on the server.
	for i, c := range clients {
		c.sh(t, fmt.Sprintf(`echo hello-%d > "$M/c/in"`, i))
	}
	got := map[string]bool{}
	for _, name := range names {
		got[strings.TrimSpace(srv.sh(t, `head -n 1 "$M/`+name+`/out" 2>/dev/null`))] = true
	}
	for i := range clients {
		if !got[fmt.Sprintf("hello-%d", i)] {
			t.Fatalf("server pipes got %v; want hello-0..2, one each", got)
		}
	}
}

func TestLinkTCPDisconnectSendsBye(t *testing.T) {
	a, b := mountPipefs(t), mountPipefs(t)
	a.mkdir(t, "p")
	b.mkdir(t, "p")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	a.sh(t, `echo "link tcp `+addr+`" > "$M/p/ctl"`)
	b.sh(t, `echo "link tcp `+addr+`" > "$M/p/ctl"`)
	a.waitStatus(t, "p", "link", "tcp "+addr+" up")
	a.sh(t, `echo "disconnect see you" > "$M/p/ctl"`)
	if got := b.sh(t, `head -n 1 "$M/p/out" 2>/dev/null`); got != "BYE see you\n" {
		t.Fatalf("b read %q after a's disconnect; want %q", got, "BYE see you\n")
	}
	// The next write reconnects with the same parameters.
	a.sh(t, `echo again > "$M/p/in"`)
	if got := b.sh(t, `head -n 1 "$M/p/out" 2>/dev/null`); got != "again\n" {
		t.Fatalf("b read %q after a's next write; want again", got)
	}
}

func TestLinkTCPRefusesOffLoopbackWithoutSecret(t *testing.T) {
	m := mountPipefs(t)
	m.mkdir(t, "p")
	// Refused when the command is checked: nothing is ever dialled.
	for _, cmd := range []string{"link tcp 192.0.2.1:9", "listen tcp :9", "listen tcp 0.0.0.0:9"} {
		m.shFails(t, `echo "`+cmd+`" > "$M/p/ctl"`)
		if got := linkField(m.readFile(t, "p/ctl"), "error"); !strings.Contains(got, "loopback") {
			t.Errorf("%q: error line %q; want it to explain the loopback rule", cmd, got)
		}
	}
}

// waitStatusPrefix waits until a status value starts with want.
func (m *mount) waitStatusPrefix(t *testing.T, pipe, key, want string) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for {
		st := m.status(t, pipe)
		if strings.HasPrefix(st[key], want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/ctl: %s stayed %q, want it to start with %q, for %v", pipe, key, st[key], want, failAfter)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
