package netlink

import (
	"bufio"
	"bytes"
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
		fmt.Sprintf("the %d ASCII bytes `%s` followed by one zero", len(labelTranscript)-1, strings.TrimSuffix(labelTranscript, "\x00")),
		fmt.Sprintf("`%s` (for the frames the dialer sends)", labelDialerKey),
		fmt.Sprintf("`%s` (for the frames the acceptor sends)", labelAcceptorKey),
		fmt.Sprintf("P, their first %d bytes", macHead),
		fmt.Sprintf("T = %d on a connection with a secret", tagSize),
		fmt.Sprintf("GCM's %d-byte authentication tag", tagSize),
		fmt.Sprintf("its version is below %d", minVersion),
		fmt.Sprintf("This is version %d,", protocolVersion),
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

// docExample is the worked example of docs/protocol.md, "Frame
// authentication": a handshake with a secret and fixed nonces, what both
// sides derive from it, and two tagged frames.
type docExample struct {
	hello, challenge, dialerAuth, acceptorAuth []byte
	transcript, d2a, a2d                       []byte
	credit, data                               []byte // the dialer's frame 0, the acceptor's frame 2
}

func newDocExample() docExample {
	secret := []byte("pipefs example secret")
	var e docExample
	h := &hello{version: protocolVersion, flags: flagSecret, maxMessage: DefaultMaxMessage}
	c := &hello{version: protocolVersion, flags: flagSecret, maxMessage: DefaultMaxMessage}
	for i := range nonceSize {
		h.nonce[i], c.nonce[i] = byte(i), byte(0x20+i)
	}
	for i := range idSize {
		h.id[i], c.id[i] = byte(0xa0+i), byte(0xb0+i)
	}
	e.hello, e.challenge = h.marshal(), c.marshal()
	e.dialerAuth = auth{recvSeq: 0, proof: makeProof(secret, labelDialer, e.hello, e.challenge, 0)}.marshal()
	e.acceptorAuth = auth{recvSeq: 0, proof: makeProof(secret, labelAcceptor, e.hello, e.challenge, 0, 0)}.marshal()
	e.transcript = transcriptHash(e.hello, e.challenge, e.dialerAuth, e.acceptorAuth)
	e.d2a, e.a2d = deriveKeys(secret, e.transcript)
	seal := func(key []byte, count uint64, f frame) []byte {
		k := newFrameKey(key)
		k.count = count
		b := appendHead(nil, f, len(f.data), tagSize)
		b = append(b, f.data...)
		n := min(len(b), macHead)
		return k.seal(b, b[:n], b[n:])
	}
	e.credit = seal(e.d2a, 0, frame{typ: frameCredit, value: DefaultMaxMessage})
	e.data = seal(e.a2d, 2, frame{typ: frameData, value: 1, data: []byte("hello\n")})
	return e
}

// hexLines is b as the doc shows it: lower-case hex bytes separated by
// spaces, 16 to a line.
func hexLines(b []byte) string {
	var lines []string
	for len(b) > 0 {
		n := min(len(b), 16)
		var parts []string
		for _, x := range b[:n] {
			parts = append(parts, fmt.Sprintf("%02x", x))
		}
		lines = append(lines, strings.Join(parts, " "))
		b = b[n:]
	}
	return strings.Join(lines, "\n")
}

// The worked example of frame authentication in docs/protocol.md is what
// this package computes. Run with -v to see it.
func TestProtocolDocAuthExample(t *testing.T) {
	b, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	e := newDocExample()
	for _, m := range []struct{ what, text string }{
		{"HELLO body", hexLines(e.hello)},
		{"CHALLENGE body", hexLines(e.challenge)},
		{"dialer's AUTH body", hexLines(e.dialerAuth)},
		{"acceptor's AUTH body", hexLines(e.acceptorAuth)},
		{"transcript hash", hex.EncodeToString(e.transcript)},
		{"dialer-to-acceptor key", hex.EncodeToString(e.d2a)},
		{"acceptor-to-dialer key", hex.EncodeToString(e.a2d)},
		{"CREDIT frame", hexLines(e.credit)},
		{"DATA frame", hexLines(e.data)},
	} {
		t.Logf("%s:\n%s", m.what, m.text)
		if !strings.Contains(doc, m.text) {
			t.Errorf("docs/protocol.md does not show the %s:\n%s", m.what, m.text)
		}
	}
	// And the example's frames verify, as a receiver would check them.
	fr := &frameReader{r: bufio.NewReader(bytes.NewReader(e.credit)), maxData: DefaultMaxMessage, key: newFrameKey(e.d2a)}
	if f, err := fr.next(); err != nil || f.typ != frameCredit || f.value != DefaultMaxMessage {
		t.Errorf("the example's CREDIT decodes as %v, %v", f, err)
	}
}
