package netlink

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"unicode/utf8"
)

// Protocol versions. Version 2 tags every frame after the handshake of a
// connection with a secret; version 1 did not, so a peer that speaks only
// version 1 is refused.
const (
	protocolVersion = 2 // the highest this package speaks
	minVersion      = 2 // the lowest
)

// helloMagic opens every HELLO and CHALLENGE body, so that a stranger
// speaking another protocol is told apart from a broken pipefs peer.
var helloMagic = [4]byte{'P', 'F', 'S', 'L'}

const (
	nonceSize      = 32
	proofSize      = sha256.Size
	helloFixedSize = 4 + 2 + 2 + nonceSize + idSize + 4 + 1
	maxNameLen     = 255
	// flagSecret in a HELLO or CHALLENGE says the sender holds a secret
	// and requires the peer to prove it holds the same.
	flagSecret = 1 << 0
)

// Labels that open the HMAC inputs, so a proof made as one role is never
// valid as the other.
const (
	labelDialer   = "pipefs-link/1 dialer\x00"
	labelAcceptor = "pipefs-link/1 acceptor\x00"
)

const idSize = 16

// SessionID names one side of a session. It is random, chosen when the
// session is made, and kept across reconnects: a peer that presents the
// same ID again is resumed, a peer with a new ID has lost its state.
type SessionID [idSize]byte

func (id SessionID) String() string { return hex.EncodeToString(id[:]) }

// newSessionID returns a fresh random ID.
func newSessionID() SessionID {
	var id SessionID
	rand.Read(id[:]) // crypto/rand.Read never fails (Go 1.24+)
	return id
}

// Role is which side of a connection a session is: the one that dialled
// or the one that accepted. The handshake is asymmetric.
type Role int

const (
	Dialer Role = iota
	Acceptor
)

func (r Role) String() string {
	if r == Dialer {
		return "dialer"
	}
	return "acceptor"
}

// hello is the body of HELLO (sent by the dialer) and of CHALLENGE (the
// acceptor's answer, which never carries a name).
type hello struct {
	version    uint16
	flags      uint16
	nonce      [nonceSize]byte
	id         SessionID
	maxMessage uint32
	name       string
}

func (h *hello) marshal() []byte {
	b := make([]byte, 0, helloFixedSize+len(h.name))
	b = append(b, helloMagic[:]...)
	b = binary.BigEndian.AppendUint16(b, h.version)
	b = binary.BigEndian.AppendUint16(b, h.flags)
	b = append(b, h.nonce[:]...)
	b = append(b, h.id[:]...)
	b = binary.BigEndian.AppendUint32(b, h.maxMessage)
	b = append(b, byte(len(h.name)))
	return append(b, h.name...)
}

func parseHello(b []byte) (*hello, error) {
	if len(b) < helloFixedSize {
		return nil, fmt.Errorf("%w: hello of %d bytes, want at least %d", ErrHandshake, len(b), helloFixedSize)
	}
	if !bytes.Equal(b[:4], helloMagic[:]) {
		return nil, fmt.Errorf("%w: bad magic %q (not a pipefs peer?)", ErrHandshake, b[:4])
	}
	h := &hello{
		version:    binary.BigEndian.Uint16(b[4:]),
		flags:      binary.BigEndian.Uint16(b[6:]),
		maxMessage: binary.BigEndian.Uint32(b[56:]),
	}
	copy(h.nonce[:], b[8:40])
	copy(h.id[:], b[40:56])
	n := int(b[60])
	if len(b) != helloFixedSize+n {
		return nil, fmt.Errorf("%w: hello of %d bytes with a %d-byte name, want %d", ErrHandshake, len(b), n, helloFixedSize+n)
	}
	h.name = string(b[helloFixedSize:])
	if h.version == 0 {
		return nil, fmt.Errorf("%w: peer speaks version 0", ErrVersion)
	}
	if h.maxMessage == 0 {
		return nil, fmt.Errorf("%w: max message 0", ErrHandshake)
	}
	if !utf8.ValidString(h.name) {
		return nil, fmt.Errorf("%w: name is not UTF-8", ErrHandshake)
	}
	return h, nil
}

// auth is the body of AUTH: the sender's resume point and its proof.
type auth struct {
	recvSeq uint64
	proof   []byte // empty without a secret
}

func (a auth) marshal() []byte {
	b := binary.BigEndian.AppendUint64(nil, a.recvSeq)
	b = append(b, byte(len(a.proof)))
	return append(b, a.proof...)
}

func parseAuth(b []byte) (auth, error) {
	if len(b) < 9 {
		return auth{}, fmt.Errorf("%w: auth of %d bytes, want at least 9", ErrHandshake, len(b))
	}
	n := int(b[8])
	if (n != 0 && n != proofSize) || len(b) != 9+n {
		return auth{}, fmt.Errorf("%w: auth of %d bytes with a %d-byte proof", ErrHandshake, len(b), n)
	}
	return auth{recvSeq: binary.BigEndian.Uint64(b), proof: b[9:]}, nil
}

// makeProof is HMAC-SHA256 keyed with the secret over the label, both
// hello bodies exactly as sent (each with its length), and the resume
// points sent so far. The bodies hold both nonces and both session IDs,
// so a proof is bound to this connection and cannot be replayed.
func makeProof(secret []byte, label string, helloBody, challengeBody []byte, seqs ...uint64) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	var n [8]byte
	for _, b := range [][]byte{helloBody, challengeBody} {
		binary.BigEndian.PutUint32(n[:4], uint32(len(b)))
		m.Write(n[:4])
		m.Write(b)
	}
	for _, s := range seqs {
		binary.BigEndian.PutUint64(n[:], s)
		m.Write(n[:])
	}
	return m.Sum(nil)
}

// handshakeSide is what one side brings to a handshake.
type handshakeSide struct {
	secret     []byte
	maxMessage int
	name       string // dialer only: the pipe name asked for
	// hellos is the registry of this process's HELLOs and CHALLENGEs
	// in flight.
	hellos *helloRegistry
	// localID returns this side's session ID for a peer presenting the
	// given ID (a server keeps one session per peer).
	localID func(peer SessionID) SessionID
	// resolve is called once the peer is known — for the dialer after
	// CHALLENGE, for the acceptor after the peer proved the secret — and
	// returns this side's resume point: the last sequence number it
	// received from that peer (0 for a new peer). An error refuses the
	// peer with the error's text.
	resolve func(peer *hello) (uint64, error)
}

// handshakeResult is what a completed handshake learned.
type handshakeResult struct {
	peer        *hello
	localID     SessionID
	localSeq    uint64 // the resume point this side sent
	peerRecvSeq uint64 // the resume point the peer sent
	maxMessage  int    // the smaller of both sides' max message
	// send and recv tag and verify the frames of each direction from now
	// on; nil without a secret.
	send, recv *frameKey
	// fr holds whatever the peer sent after its last handshake frame.
	fr *frameReader
}

// handshaker runs one side of the handshake over a connection.
type handshaker struct {
	side          handshakeSide
	w             io.Writer
	fr            *frameReader
	local, remote net.Addr // the connection's ends, for the hello registry

	// The bodies of the handshake frames as sent, for the proofs and the
	// keys: HELLO, CHALLENGE, and the dialer's and the acceptor's AUTH.
	hello, challenge, dialerAuth, acceptorAuth []byte
}

func (hs *handshaker) send(t frameType, body []byte) error {
	_, err := hs.w.Write(appendFrame(nil, frame{typ: t, data: body}))
	if err != nil {
		return fmt.Errorf("sending %s: %w", t, err)
	}
	return nil
}

// refuse tells the peer why it is refused (best effort) and returns err.
func (hs *handshaker) refuse(err error) error {
	hs.w.Write(appendFrame(nil, errorFrame(err)))
	return err
}

// refuseTelling is refuse for a reason that reads differently from the
// other side: the peer is told told, which it shows as its own status.
func (hs *handshaker) refuseTelling(err, told error) error {
	hs.w.Write(appendFrame(nil, errorFrame(told)))
	return err
}

// errorFrame is an ERROR frame carrying err's text.
func errorFrame(err error) frame {
	return frame{typ: frameError, data: []byte(truncateText(err.Error(), MaxByeText))}
}

// expect reads the next frame, which must be of type want; an ERROR (or
// BYE) is the peer's refusal.
func (hs *handshaker) expect(want frameType) ([]byte, error) {
	f, err := hs.fr.next()
	if err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("%w: connection closed waiting for %s", ErrHandshake, want)
		}
		return nil, fmt.Errorf("waiting for %s: %w", want, err)
	}
	if f.typ == frameError || f.typ == frameBye {
		// Anybody's words, before the peer proved anything: kept to one
		// clean line wherever they are shown.
		return nil, fmt.Errorf("%w: %s", ErrRefused, CleanText(string(f.data)))
	}
	if f.typ != want {
		return nil, hs.refuse(fmt.Errorf("%w: got %s, want %s", ErrHandshake, f.typ, want))
	}
	return f.data, nil
}

func (hs *handshaker) flags() uint16 {
	if len(hs.side.secret) > 0 {
		return flagSecret
	}
	return 0
}

// checkPeer refuses what the two sides cannot get past, whichever role
// this side has: a version it does not speak, a HELLO or CHALLENGE this
// process sent itself, relayed back to it, and a secret on one side only:
// without that check the side with none would accept anyone, and the
// other would fail later with a less clear error.
func (hs *handshaker) checkPeer(peer *hello, role Role) error {
	if peer.version < minVersion {
		// An older pipefs: frames after its handshake carry no tag.
		verb := "speaks up to"
		if role == Dialer {
			verb = "chose"
		}
		return hs.refuse(fmt.Errorf("%w: peer %s version %d, this side needs version %d or later (upgrade the peer's pipefs)",
			ErrVersion, verb, peer.version, minVersion))
	}
	if err := hs.side.hellos.check(peer, hs.local, hs.remote); err != nil {
		return hs.refuse(err)
	}
	mine, theirs := len(hs.side.secret) > 0, peer.flags&flagSecret != 0
	noSecret := fmt.Errorf("%w: the peer has no secret, and this side requires one", ErrAuth)
	needsSecret := fmt.Errorf("%w: the peer requires a secret, and this side has none", ErrAuth)
	switch {
	case mine && !theirs:
		return hs.refuseTelling(noSecret, needsSecret)
	case !mine && theirs:
		return hs.refuseTelling(needsSecret, noSecret)
	}
	return nil
}

// sendHello sends this side's HELLO or CHALLENGE, fresh nonce and all;
// the returned function forgets it in the process's registry once the
// handshake is over.
func (hs *handshaker) sendHello(t frameType, id SessionID, version uint16, name string) (*hello, func(), error) {
	h := &hello{version: version, flags: hs.flags(), id: id, maxMessage: uint32(hs.side.maxMessage), name: name}
	rand.Read(h.nonce[:])
	body := h.marshal()
	if t == frameHello {
		hs.hello = body
	} else {
		hs.challenge = body
	}
	forget := hs.side.hellos.add(h, hs.local, hs.remote)
	if err := hs.send(t, body); err != nil {
		forget()
		return nil, nil, err
	}
	return h, forget, nil
}

// proof is this side's proof as role, over the handshake so far and the
// resume points; nil without a secret.
func (hs *handshaker) proof(role Role, seqs ...uint64) []byte {
	if len(hs.side.secret) == 0 {
		return nil
	}
	label := labelDialer
	if role == Acceptor {
		label = labelAcceptor
	}
	return makeProof(hs.side.secret, label, hs.hello, hs.challenge, seqs...)
}

// sendAuth sends this side's AUTH as role.
func (hs *handshaker) sendAuth(role Role, recvSeq uint64, proofSeqs ...uint64) error {
	body := auth{recvSeq: recvSeq, proof: hs.proof(role, proofSeqs...)}.marshal()
	if role == Dialer {
		hs.dialerAuth = body
	} else {
		hs.acceptorAuth = body
	}
	return hs.send(frameAuth, body)
}

// expectAuth reads the peer's AUTH, the peer being role, and checks its
// proof when this side has a secret.
func (hs *handshaker) expectAuth(role Role, proofSeqs func(peerSeq uint64) []uint64) (uint64, error) {
	b, err := hs.expect(frameAuth)
	if err != nil {
		return 0, err
	}
	a, err := parseAuth(b)
	if err != nil {
		return 0, hs.refuse(err)
	}
	if role == Dialer {
		hs.dialerAuth = b
	} else {
		hs.acceptorAuth = b
	}
	if len(hs.side.secret) > 0 && !hmac.Equal(a.proof, hs.proof(role, proofSeqs(a.recvSeq)...)) {
		return 0, hs.refuse(fmt.Errorf("%w: wrong secret", ErrAuth))
	}
	return a.recvSeq, nil
}

// dial runs the dialer's side: HELLO, CHALLENGE, AUTH, AUTH.
func (hs *handshaker) dial() (*handshakeResult, error) {
	me, forget, err := hs.sendHello(frameHello, hs.side.localID(SessionID{}), protocolVersion, hs.side.name)
	if err != nil {
		return nil, err
	}
	defer forget()
	b, err := hs.expect(frameChallenge)
	if err != nil {
		return nil, err
	}
	peer, err := parseHello(b)
	if err != nil {
		return nil, hs.refuse(err)
	}
	hs.challenge = b
	switch {
	case peer.name != "":
		return nil, hs.refuse(fmt.Errorf("%w: CHALLENGE carries a name", ErrHandshake))
	case peer.version > protocolVersion:
		return nil, hs.refuse(fmt.Errorf("%w: peer chose version %d, this side speaks up to %d", ErrVersion, peer.version, protocolVersion))
	case peer.id == me.id:
		return nil, fmt.Errorf("dialling: %w (session %v)", ErrSelfConnect, me.id)
	case peer.nonce == me.nonce:
		return nil, hs.refuse(fmt.Errorf("%w: peer reflected the nonce", ErrHandshake))
	}
	if err := hs.checkPeer(peer, Dialer); err != nil {
		return nil, err
	}
	mySeq, err := hs.side.resolve(peer)
	if err != nil {
		return nil, hs.refuse(err)
	}
	if err := hs.sendAuth(Dialer, mySeq, mySeq); err != nil {
		return nil, err
	}
	theirSeq, err := hs.expectAuth(Acceptor, func(theirs uint64) []uint64 { return []uint64{mySeq, theirs} })
	if err != nil {
		return nil, err
	}
	return hs.result(Dialer, peer, me.id, mySeq, theirSeq), nil
}

// accept runs the acceptor's side. The acceptor sends CHALLENGE before it
// checks for itself, so that a self-connected dialer sees its own ID too
// (and neither side writes a refusal the other is not reading).
func (hs *handshaker) accept() (*handshakeResult, error) {
	b, err := hs.expect(frameHello)
	if err != nil {
		return nil, err
	}
	peer, err := parseHello(b)
	if err != nil {
		return nil, hs.refuse(err)
	}
	hs.hello = b
	// Refusing here, while the dialer waits for CHALLENGE, means only one
	// side writes a refusal; on an unbuffered connection two would block
	// each other.
	if err := hs.checkPeer(peer, Acceptor); err != nil {
		return nil, err
	}
	me, forget, err := hs.sendHello(frameChallenge, hs.side.localID(peer.id), min(peer.version, protocolVersion), "")
	if err != nil {
		return nil, err
	}
	defer forget()
	if peer.id == me.id {
		return nil, fmt.Errorf("accepting: %w (session %v)", ErrSelfConnect, me.id)
	}
	theirSeq, err := hs.expectAuth(Dialer, func(theirs uint64) []uint64 { return []uint64{theirs} })
	if err != nil {
		return nil, err
	}
	mySeq, err := hs.side.resolve(peer)
	if err != nil {
		return nil, hs.refuse(err)
	}
	if err := hs.sendAuth(Acceptor, mySeq, theirSeq, mySeq); err != nil {
		return nil, err
	}
	return hs.result(Acceptor, peer, me.id, mySeq, theirSeq), nil
}

// result is what the handshake learned, with the keys of both directions
// when there is a secret.
func (hs *handshaker) result(role Role, peer *hello, id SessionID, mySeq, theirSeq uint64) *handshakeResult {
	res := &handshakeResult{
		peer: peer, localID: id, localSeq: mySeq, peerRecvSeq: theirSeq,
		maxMessage: min(hs.side.maxMessage, int(peer.maxMessage)),
	}
	if len(hs.side.secret) > 0 {
		d, a := deriveKeys(hs.side.secret, transcriptHash(hs.hello, hs.challenge, hs.dialerAuth, hs.acceptorAuth))
		res.send, res.recv = newFrameKey(d), newFrameKey(a)
		if role == Acceptor {
			res.send, res.recv = res.recv, res.send
		}
	}
	return res
}
