package netlink

import (
	"net"
	"testing"
)

// A HELLO or CHALLENGE that brings back a nonce or session ID this
// process sent is refused unless it comes on the other end of the
// connection it went out on; once the handshake is over, it is forgotten.
func TestHelloRegistry(t *testing.T) {
	addr := func(s string) net.Addr {
		a, err := net.ResolveTCPAddr("tcp", s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	dialer, listener := addr("127.0.0.1:40000"), addr("127.0.0.1:7400")
	relay, relayOut := addr("127.0.0.1:9999"), addr("127.0.0.1:40001")
	r := newHelloRegistry()
	sent := &hello{id: newSessionID()}
	sent.nonce[0] = 1
	forget := r.add(sent, dialer, relay) // a dial that reached a relay
	other := &hello{id: newSessionID()}
	tests := []struct {
		name          string
		h             *hello
		local, remote net.Addr
		refused       bool
	}{
		{"relayed to this process's listener", sent, listener, relayOut, true},
		{"the other end of its own connection", sent, relay, dialer, false},
		{"the other end, IPv4-mapped", sent, addr("[::ffff:127.0.0.1]:9999"), dialer, false},
		{"session ID only, relayed", &hello{id: sent.id}, listener, relayOut, true},
		{"nonce only, relayed", &hello{id: other.id, nonce: sent.nonce}, listener, relayOut, true},
		{"someone else's", other, listener, relayOut, false},
	}
	for _, tt := range tests {
		if err := r.check(tt.h, tt.local, tt.remote); (err != nil) != tt.refused {
			t.Errorf("%s: check = %v, want refused %v", tt.name, err, tt.refused)
		}
	}
	forget()
	if err := r.check(sent, listener, relayOut); err != nil {
		t.Errorf("after the handshake ended: %v", err)
	}
	if len(r.nonces) != 0 || len(r.ids) != 0 {
		t.Errorf("registry keeps %d nonces and %d IDs", len(r.nonces), len(r.ids))
	}
}
