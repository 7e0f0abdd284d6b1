package netlink

import (
	"fmt"
	"net"
	"sync"
)

// helloRegistry remembers the nonces and session IDs this process has
// sent in the HELLO and CHALLENGE frames of handshakes still in progress,
// and the connection each went out on. A HELLO or CHALLENGE that brings
// one of them back on any connection but the other end of that one has
// been relayed: someone took this process's own words to another of its
// handshakes. The tags of every frame after the handshake are what stop
// a relay from going further (the relay cannot make them); refusing it
// here is a cheap second line, which also keeps it out of the logs as a
// peer that authenticated.
//
// Two pipes of one process linked directly to each other (a `link tcp` to
// a `listen tcp` of the same daemon) meet on the two ends of one
// connection and pass; two linked through a relay of any kind, a tunnel
// included, are refused.
type helloRegistry struct {
	mu     sync.Mutex
	nonces map[[nonceSize]byte]*sentHello
	ids    map[SessionID][]*sentHello
}

// sentHello is one HELLO or CHALLENGE sent, and the ends of its
// connection.
type sentHello struct {
	nonce         [nonceSize]byte
	id            SessionID
	local, remote net.Addr
}

// processHellos is the registry of this process, which every handshake
// uses unless its Config names another (tests that play two processes).
var processHellos = newHelloRegistry()

func newHelloRegistry() *helloRegistry {
	return &helloRegistry{nonces: make(map[[nonceSize]byte]*sentHello), ids: make(map[SessionID][]*sentHello)}
}

// A nil registry records and refuses nothing.

// add records h as sent on the connection from local to remote, until the
// returned function is called.
func (r *helloRegistry) add(h *hello, local, remote net.Addr) (remove func()) {
	if r == nil {
		return func() {}
	}
	e := &sentHello{nonce: h.nonce, id: h.id, local: local, remote: remote}
	r.mu.Lock()
	r.nonces[e.nonce] = e
	r.ids[e.id] = append(r.ids[e.id], e)
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.nonces[e.nonce] == e {
			delete(r.nonces, e.nonce)
		}
		list := r.ids[e.id]
		for i, x := range list {
			if x == e {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(r.ids, e.id)
		} else {
			r.ids[e.id] = list
		}
	}
}

// check refuses a peer's HELLO or CHALLENGE, received on the connection
// from local to remote, that carries a nonce or session ID this process
// sent on a connection other than the other end of this one.
func (r *helloRegistry) check(h *hello, local, remote net.Addr) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.nonces[h.nonce]; e != nil && !e.otherEnd(local, remote) {
		return fmt.Errorf("%w: the peer sent a nonce this process sent on another connection (relayed)", ErrAuth)
	}
	list := r.ids[h.id]
	for _, e := range list {
		if e.otherEnd(local, remote) {
			return nil
		}
	}
	if len(list) > 0 {
		return fmt.Errorf("%w: the peer sent a session ID this process sent on another connection (relayed)", ErrAuth)
	}
	return nil
}

// otherEnd reports whether the connection from local to remote is the
// other end of the one e went out on.
func (e *sentHello) otherEnd(local, remote net.Addr) bool {
	return sameAddr(e.local, remote) && sameAddr(e.remote, local)
}

func sameAddr(a, b net.Addr) bool {
	if a == nil || b == nil {
		return false
	}
	ta, ok1 := a.(*net.TCPAddr)
	tb, ok2 := b.(*net.TCPAddr)
	if ok1 && ok2 {
		// An IPv4 address and its IPv4-mapped IPv6 form are one.
		return ta.IP.Equal(tb.IP) && ta.Port == tb.Port && ta.Zone == tb.Zone
	}
	return a.Network() == b.Network() && a.String() == b.String()
}
