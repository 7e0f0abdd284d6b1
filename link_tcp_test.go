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

// Lines written before disconnect reach the peer before its BYE, however
// far the link had got with them; a line written after, after it. An
// unlink right after a disconnect gives back only what the peer did not
// deliver: each line ends up on exactly one side.
func TestLinkTCPDisconnectKeepsOrder(t *testing.T) {
	a, b := mountPipefs(t), mountPipefs(t)
	a.mkdir(t, "p")
	b.mkdir(t, "p")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	a.sh(t, `echo "link tcp `+addr+`" > "$M/p/ctl"`)
	b.sh(t, `echo "link tcp `+addr+`" > "$M/p/ctl"`)
	a.waitStatus(t, "p", "link", "tcp "+addr+" up")
	b.waitStatus(t, "p", "link", "tcp "+addr+" up")

	a.sh(t, `seq 1 20000 > "$M/p/in"; echo disconnect > "$M/p/ctl"; echo after > "$M/p/in"`)
	got := b.sh(t, `head -n 20002 "$M/p/out" 2>/dev/null`)
	want := a.sh(t, `seq 1 20000; echo BYE; echo after`)
	if got != want {
		t.Fatalf("b read %d lines ending %q; want 1..20000, BYE, after", strings.Count(got, "\n"), got[max(0, len(got)-40):])
	}

	a.waitStatus(t, "p", "link", "tcp "+addr+" up")
	a.sh(t, `seq 1 5000 > "$M/p/in"; echo disconnect > "$M/p/ctl"; echo unlink > "$M/p/ctl"`)
	a.waitStatus(t, "p", "link", "none")
	delivered := b.sh(t, `while read -r l; do [ "$l" = BYE ] && break; echo "$l"; done < "$M/p/out"`)
	back := a.sh(t, `n=$(cat "$M/p/pending"); [ "$n" -gt 0 ] && head -n "$n" "$M/p/out" 2>/dev/null; true`)
	all := strings.Fields(delivered + back)
	seen := map[string]bool{}
	for _, l := range all {
		if seen[l] {
			t.Fatalf("line %s both delivered and given back (%d delivered, %d back)", l, strings.Count(delivered, "\n"), strings.Count(back, "\n"))
		}
		seen[l] = true
	}
	if len(all) != 5000 {
		t.Fatalf("%d lines delivered and %d given back; want 5000 in all", strings.Count(delivered, "\n"), strings.Count(back, "\n"))
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

// linkThroughProxy sets up what several tests need: mount b's pipe srv
// listens on a loopback port, and each named pipe of mount a is linked,
// with `link tcp`, to a proxy in front of it. It returns the proxy and,
// for each of a's pipes, the name of the pipe the server made for it.
func linkThroughProxy(t *testing.T, a, b *mount, cutAt func() cutPoint, pipes ...string) (*tcpProxy, map[string]string) {
	t.Helper()
	b.mkdir(t, "srv")
	srvAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b.sh(t, `echo "listen tcp `+srvAddr+`" > "$M/srv/ctl"`)
	proxy := startProxy(t, srvAddr, cutAt)
	peers := map[string]string{}
	for _, p := range pipes {
		a.mkdir(t, p)
		a.sh(t, `echo "link tcp `+proxy.addr()+`" > "$M/`+p+`/ctl"`)
		a.waitStatus(t, p, "link", "tcp "+proxy.addr()+" up")
		// accept(): the server announces the pipe it made for p.
		peers[p] = strings.TrimSpace(b.sh(t, `head -n 1 "$M/srv/out" 2>/dev/null`))
	}
	return proxy, peers
}

// A disconnect returns at once, even when the peer cannot answer: before,
// each one held one of the daemon's two request loops (and the pipe's ctl
// lock) until the connection ended, up to 5 s, so two of them stalled the
// whole mount. The peer still gets its BYE, and the next write reconnects.
func TestLinkTCPDisconnectDoesNotStallTheMount(t *testing.T) {
	a, b := mountPipefs(t), mountPipefs(t)
	proxy, peers := linkThroughProxy(t, a, b, nil, "p1", "p2")
	a.mkdir(t, "q")
	a.sh(t, `echo waiting > "$M/q/in"`)

	// An unresponsive peer: the BYE cannot reach it, nor its close come
	// back, so each connection's end stays pending.
	proxy.freeze()
	start := time.Now()
	got := a.sh(t, `
		echo "disconnect one" > "$M/p1/ctl" & one=$!
		echo "disconnect two" > "$M/p2/ctl" & two=$!
		wait $one || exit 1
		wait $two || exit 2
		head -n 1 "$M/q/ctl"
		cat "$M/q/pending"`)
	took := time.Since(start)
	if got != "name q\n1\n" {
		t.Fatalf("ctl and pending of another pipe read %q; want %q", got, "name q\n1\n")
	}
	// Under the 5 s each disconnect used to hold a request loop (and the
	// 10 s a BYE waits for a silent peer), with room for a loaded machine.
	if took > 4*time.Second {
		t.Fatalf("two disconnects and a read of another pipe took %v with the peer unresponsive; want them served at once", took)
	}
	// Meanwhile the status says what was asked.
	for p, text := range map[string]string{"p1": "one", "p2": "two"} {
		if got, want := a.status(t, p)["link"], "tcp "+proxy.addr()+" down disconnected: "+text; got != want {
			t.Errorf("%s: link %q right after disconnect; want %q", p, got, want)
		}
	}

	proxy.thaw()
	for p, text := range map[string]string{"p1": "one", "p2": "two"} {
		if got := b.sh(t, `head -n 1 "$M/`+peers[p]+`/out" 2>/dev/null`); got != "BYE "+text+"\n" {
			t.Fatalf("%s (peer of %s) read %q; want %q", peers[p], p, got, "BYE "+text+"\n")
		}
	}
	// The next write reconnects.
	a.sh(t, `echo again > "$M/p1/in"`)
	if got := b.sh(t, `head -n 1 "$M/`+peers["p1"]+`/out" 2>/dev/null`); got != "again\n" {
		t.Fatalf("%s read %q after p1's next write; want again", peers["p1"], got)
	}
	a.waitStatus(t, "p1", "link", "tcp "+proxy.addr()+" up")
	if got := a.status(t, "p2")["link"]; got != "tcp "+proxy.addr()+" down disconnected: two" {
		t.Errorf("p2: link %q; want it still down (nothing written to it)", got)
	}
}

// unlink of a TCP link returns at once and finishes in the background; it
// loses nothing (what the link had sent but the peer had not acknowledged
// comes back to the pipe, in order), and a link command right after it
// waits for it and works.
func TestLinkTCPUnlinkThenLinkAgain(t *testing.T) {
	a, b := mountPipefs(t), mountPipefs(t)
	proxy, peers := linkThroughProxy(t, a, b, nil, "p")
	proxy.freeze() // the peer acknowledges nothing from now on
	a.sh(t, `printf 'm1\nm2\nm3\n' > "$M/p/in"`)
	a.waitStatus(t, "p", "sent", "3")
	a.sh(t, `echo unlink > "$M/p/ctl" && echo "link tcp `+proxy.addr()+`" > "$M/p/ctl"`)
	// What the frozen proxy holds of the old connection must not reach
	// the peer later: this test checks that unlink gives it back.
	proxy.cutAll()
	proxy.thaw()
	if got := a.sh(t, `head -n 3 "$M/p/out" 2>/dev/null`); got != "m1\nm2\nm3\n" {
		t.Fatalf("after unlink, p/out gave %q; want the three unacknowledged messages in order", got)
	}
	// The new link is a new session: the server makes a new pipe for it.
	a.waitStatus(t, "p", "link", "tcp "+proxy.addr()+" up")
	peer := strings.TrimSpace(b.sh(t, `head -n 1 "$M/srv/out" 2>/dev/null`))
	if peer == peers["p"] {
		t.Fatalf("the new link got the old pipe %s", peer)
	}
	a.sh(t, `echo fresh > "$M/p/in"`)
	if got := b.sh(t, `head -n 1 "$M/`+peer+`/out" 2>/dev/null`); got != "fresh\n" {
		t.Fatalf("%s read %q; want fresh", peer, got)
	}
	b.wantPending(t, peers["p"], 0)
	// rmdir of a linked pipe unlinks it first, in the background too.
	a.sh(t, `rmdir "$M/p"`)
	if got := a.status(t, "")["pipes"]; got != "0" {
		t.Fatalf("after rmdir the mount counts %s pipes; want 0", got)
	}
}
