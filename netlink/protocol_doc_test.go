package netlink

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
)

// docs/protocol.md is the specification a peer in another language is
// written from: its examples and constants must be what this package does.
func TestProtocolDoc(t *testing.T) {
	b, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	hexOf := func(f frame) string {
		h := hex.EncodeToString(appendFrame(nil, f))
		var parts []string
		for i := 0; i < len(h); i += 2 {
			parts = append(parts, h[i:i+2])
		}
		return strings.Join(parts, " ")
	}
	musts := []string{
		hexOf(frame{typ: frameData, value: 1, data: []byte("hello\n")}),
		hexOf(frame{typ: frameAck, value: 5}),
		hexOf(frame{typ: frameCredit, value: 65536}),
		hexOf(frame{typ: frameBye, data: []byte("see you")}),
		fmt.Sprintf("the %d ASCII bytes `%s` followed by one zero byte", len(labelDialer)-1, strings.TrimSuffix(labelDialer, "\x00")),
		fmt.Sprintf("the %d ASCII bytes `%s` followed by one zero byte", len(labelAcceptor)-1, strings.TrimSuffix(labelAcceptor, "\x00")),
		fmt.Sprintf("ASCII `%s`", helloMagic[:]),
		fmt.Sprintf("The body is exactly %d + L bytes", helloFixedSize),
		fmt.Sprintf("| ACK at least every | %d messages |", DefaultAckEvery),
		fmt.Sprintf("| credit step | %d KiB |", creditStep>>10),
		fmt.Sprintf("at most %d", MaxByeText),
		fmt.Sprintf("| concurrent handshakes per listening pipe | %d, at most %d from one source address", DefaultMaxHandshakes, DefaultMaxHandshakes/4),
		fmt.Sprintf("| concurrent handshakes per listening rendezvous | %d, at most %d from one source address |", maxRendezvousHandshakes, maxRendezvousHandshakesPerSource),
		fmt.Sprintf("| HELLO, at an acceptor | within %v of the connection", seconds(DefaultHelloTimeout)),
		fmt.Sprintf("has run %g s", evictAge.Seconds()),
		fmt.Sprintf("| handshake (TLS + pipefs) | %v |", seconds(DefaultHandshakeTimeout)),
		fmt.Sprintf("| keepalive interval / dead after | %v / %v |", seconds(DefaultKeepAlive), seconds(3*DefaultKeepAlive)),
	}
	for typ, name := range frameNames {
		musts = append(musts, fmt.Sprintf("| `0x%02x` | %s |", uint8(typ), name))
	}
	for _, m := range musts {
		if !strings.Contains(doc, m) {
			t.Errorf("docs/protocol.md does not say %q", m)
		}
	}
}

func seconds(d interface{ Seconds() float64 }) string { return fmt.Sprintf("%g s", d.Seconds()) }
