package netlink

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// relayed is a server and a link that hold the same secret, the link
// dialling a tap (a man in the middle without the secret) that relays to
// the server.
type relayed struct {
	ts   *testServer
	tap  *tap
	link *Link
	ea   *memEndpoint // the link's
	// What the server and the link logged.
	srvLog, linkLog *logRecorder
}

// startRelayed starts the server, the tap and the link. otherProcess
// gives the server a registry of its own, as if it ran in another
// process than the link (so that the HELLO check does not apply);
// client, if set, is the link's endpoint.
func startRelayed(t *testing.T, otherProcess bool, client Endpoint, edit func(conn int, fromDialer bool, n int, f []byte) [][]byte) *relayed {
	t.Helper()
	secret := []byte("the daemon's --secret-file")
	log, rec := recordingLogger(t)
	ts := startServer(t, func(c *ServerConfig) {
		c.Secret = secret
		c.Logger = log
		if otherProcess {
			c.hellos = newHelloRegistry()
		}
	})
	tp := startTap(t, ts.addr)
	tp.edit = edit
	if client == nil {
		client = newMemEndpoint(1 << 20)
	}
	cfg := fastLink(t, client)
	var linkLog *logRecorder
	cfg.Logger, linkLog = recordingLogger(t)
	cfg.Secret = secret
	cfg.Dial = tcpDial(tp.addr(), nil)
	l, err := NewLink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	startLink(t, l)
	ea, _ := client.(*memEndpoint)
	return &relayed{ts: ts, tap: tp, link: l, ea: ea, srvLog: rec, linkLog: linkLog}
}

// The reviewer's relay attack, within one process (a daemon with a
// `listen tcp` and a `link tcp`, whose dial reaches a man in the middle
// who relays it to the daemon's own server): the server refuses the HELLO
// it sees its own process sent, before any session is made for it.
func TestRelayOwnHelloRefused(t *testing.T) {
	checkLeaks(t)
	r := startRelayed(t, false, nil, nil)
	waitFor(t, "the link to show the refusal", func() bool {
		st := r.link.Stats()
		return st.State == StateConnecting && strings.Contains(st.Reason, "relayed")
	})
	if n := r.ts.srv.Sessions(); n != 0 {
		t.Fatalf("the server made %d sessions for a relayed HELLO", n)
	}
	waitFor(t, "the server to log the relayed HELLO", func() bool { return strings.Contains(r.srvLog.String(), "relayed") })
}

// The relay attack across processes: the HELLO check cannot see it, the
// handshake succeeds through the relay (both ends hold the secret), and
// the relay passes honest traffic on. But whatever it adds — a frame of
// its own, an earlier frame again, the server's own frame sent back, a
// frame left out, two frames swapped — fails its tag: the server closes
// the connection, delivers nothing of it, and logs it; the link connects
// again and every message arrives exactly once.
func TestRelayCannotInject(t *testing.T) {
	forged := appendFrame(nil, frame{typ: frameData, value: 4, data: []byte("injected by someone without the secret\n")})
	tests := []struct {
		name string
		// attack acts on the first connection, after a 0-2 crossed.
		attack func(p *tapPair, ea *memEndpoint, a *attackFlags)
		// more is what the link sent during the attack, delivered after
		// it, on the next connection.
		more int
	}{
		{"forged DATA", func(p *tapPair, _ *memEndpoint, _ *attackFlags) {
			f := append(forged[:len(forged):len(forged)], make([]byte, tagSize)...)
			putLength(f)
			p.inject(f, true)
		}, 0},
		{"DATA without a tag (version 1)", func(p *tapPair, _ *memEndpoint, _ *attackFlags) {
			p.inject(forged, true)
		}, 0},
		{"replayed DATA", func(p *tapPair, _ *memEndpoint, _ *attackFlags) {
			p.inject(firstOf(p.recorded(true), frameData), true)
		}, 0},
		{"server's frame reflected", func(p *tapPair, _ *memEndpoint, _ *attackFlags) {
			p.inject(firstOf(p.recorded(false)[2:], frameCredit), true)
		}, 0},
		{"DATA dropped", func(_ *tapPair, ea *memEndpoint, a *attackFlags) {
			a.drop.Store(true)
			ea.sendN("d", 2)
		}, 2},
		{"DATA reordered", func(_ *tapPair, ea *memEndpoint, a *attackFlags) {
			a.swap.Store(true)
			ea.sendN("d", 2)
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			var a attackFlags
			r := startRelayed(t, true, nil, a.edit)
			r.ea.sendN("a", 3)
			eb := r.ts.endpoint(t, "")
			eb.expectN(t, "a", 0, 3)
			p := r.tap.pair(t, 0)
			tt.attack(p, r.ea, &a)
			p.waitAcceptorClosed(t)

			eb.expectN(t, "d", 0, tt.more)
			r.ea.sendN("b", 3)
			eb.expectN(t, "b", 0, 3)
			if got := eb.inboxStrings(); len(got) != 0 {
				t.Fatalf("the server delivered %q beyond the link's messages", got)
			}
			if st := r.link.Stats(); st.Connections < 2 {
				t.Errorf("link stats %+v, want a second connection", st)
			}
			log := r.srvLog.String()
			if !strings.Contains(log, "frame failed authentication") || strings.Count(log, "level=WARN msg=\"frame failed") != 1 {
				t.Errorf("the server did not log the failed frame once as a warning; log:\n%s", log)
			}
		})
	}
}

// attackFlags drive a tap's edits on the first connection, from the
// dialer: drop the next DATA frame, or swap the next two.
type attackFlags struct {
	drop, swap atomic.Bool
	mu         sync.Mutex
	held       []byte
}

func (a *attackFlags) edit(conn int, fromDialer bool, n int, f []byte) [][]byte {
	if conn != 0 || !fromDialer || rawType(f) != frameData {
		return [][]byte{f}
	}
	if a.drop.CompareAndSwap(true, false) {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.swap.Load() {
		if a.held == nil {
			a.held = f
			return nil
		}
		a.swap.Store(false)
		return [][]byte{f, a.held}
	}
	return [][]byte{f}
}

// putLength sets the length field of a raw frame to what follows it.
func putLength(f []byte) {
	n := len(f) - lengthSize
	f[0], f[1], f[2], f[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}

func firstOf(frames [][]byte, t frameType) []byte {
	for _, f := range frames {
		if rawType(f) == t {
			return f
		}
	}
	panic(fmt.Sprintf("no %s frame among %d", t, len(frames)))
}

// A bit flipped on the wire in a DATA or RUN frame, either way: the
// receiver closes the connection without delivering the corrupted
// message (or anything of its frame), the link connects again, and every
// message arrives exactly once, in order, intact.
func TestFlippedBitReconnects(t *testing.T) {
	const n = 2000
	tests := []struct {
		name       string
		fromDialer bool
		typ        frameType
	}{
		{"DATA to the server", true, frameData},
		{"RUN to the server", true, frameRun},
		{"DATA to the link", false, frameData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			var seen atomic.Int64
			edit := func(conn int, fromDialer bool, _ int, f []byte) [][]byte {
				// The tenth such frame of the first connection, in the
				// last byte of its message.
				if conn == 0 && fromDialer == tt.fromDialer && rawType(f) == tt.typ && seen.Add(1) == 10 {
					f[len(f)-tagSize-1] ^= 0x01
				}
				return [][]byte{f}
			}
			var client Endpoint = newMemEndpoint(1 << 20)
			be := newBatchEndpoint(1 << 20)
			if tt.typ == frameRun {
				client = be
			}
			r := startRelayed(t, true, client, edit)
			var msgs [][]byte
			for i := range n {
				msgs = append(msgs, streamMsg("up", i))
			}
			if tt.typ == frameRun {
				for i := 0; i < n; i += 50 {
					be.sendBlock(msgs[i : i+50]...)
				}
			} else {
				r.ea.send(msgs...)
			}
			eb := r.ts.endpoint(t, "")
			if !tt.fromDialer {
				eb.send(msgs...)
			}
			to := eb
			if !tt.fromDialer {
				to = client.(*memEndpoint)
			}
			if err := consume(to, "up", n); err != nil {
				t.Fatal(err)
			}
			if seen.Load() < 10 {
				t.Fatalf("only %d %s frames crossed; nothing was flipped", seen.Load(), tt.typ)
			}
			if got := to.inboxStrings(); len(got) != 0 {
				t.Fatalf("%d messages beyond the stream: %q", len(got), got)
			}
			if st := r.link.Stats(); st.Connections < 2 {
				t.Errorf("link stats %+v, want a second connection", st)
			}
			log := r.srvLog
			if !tt.fromDialer {
				log = r.linkLog
			}
			if !strings.Contains(log.String(), "frame failed authentication") {
				t.Errorf("the receiver did not log the failed frame; log:\n%s", log)
			}
		})
	}
}
