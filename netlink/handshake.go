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
	"unicode/utf8"
)

// protocolVersion is the highest (and only) version this package speaks.
const protocolVersion = 1

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
	// fr holds whatever the peer sent after its last handshake frame.
	fr *frameReader
}

// handshaker runs one side of the handshake over a connection.
type handshaker struct {
	side handshakeSide
	w    io.Writer
	fr   *frameReader
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
	hs.w.Write(errorFrame(err))
	return err
}

// refuseTelling is refuse for a reason that reads differently from the
// other side: the peer is told told, which it shows as its own status.
func (hs *handshaker) refuseTelling(err, told error) error {
	hs.w.Write(errorFrame(told))
	return err
}

// errorFrame encodes an ERROR frame carrying err's text.
func errorFrame(err error) []byte {
	text := truncateText(err.Error(), MaxByeText)
	return appendFrame(nil, frame{typ: frameError, data: []byte(text)})
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

// checkSecrets refuses a peer when only one side holds a secret: without
// this the side with none would accept anyone, and the other would fail
// later with a less clear error.
func (hs *handshaker) checkSecrets(peer *hello) error {
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

func (hs *handshaker) newHello(id SessionID, version uint16, name string) *hello {
	h := &hello{version: version, flags: hs.flags(), id: id, maxMessage: uint32(hs.side.maxMessage), name: name}
	rand.Read(h.nonce[:])
	return h
}

func (hs *handshaker) proof(label string, helloBody, challengeBody []byte, seqs ...uint64) []byte {
	if len(hs.side.secret) == 0 {
		return nil
	}
	return makeProof(hs.side.secret, label, helloBody, challengeBody, seqs...)
}

// verify checks a peer's proof when this side has a secret.
func (hs *handshaker) verify(got []byte, label string, helloBody, challengeBody []byte, seqs ...uint64) error {
	if len(hs.side.secret) == 0 {
		return nil
	}
	if !hmac.Equal(got, hs.proof(label, helloBody, challengeBody, seqs...)) {
		return hs.refuse(fmt.Errorf("%w: wrong secret", ErrAuth))
	}
	return nil
}

// dial runs the dialer's side: HELLO, CHALLENGE, AUTH, AUTH.
func (hs *handshaker) dial() (*handshakeResult, error) {
	me := hs.newHello(hs.side.localID(SessionID{}), protocolVersion, hs.side.name)
	helloBody := me.marshal()
	if err := hs.send(frameHello, helloBody); err != nil {
		return nil, err
	}
	challengeBody, err := hs.expect(frameChallenge)
	if err != nil {
		return nil, err
	}
	peer, err := parseHello(challengeBody)
	if err != nil {
		return nil, hs.refuse(err)
	}
	if peer.name != "" {
		return nil, hs.refuse(fmt.Errorf("%w: CHALLENGE carries a name", ErrHandshake))
	}
	if peer.version > protocolVersion {
		return nil, hs.refuse(fmt.Errorf("%w: peer chose version %d, this side speaks up to %d", ErrVersion, peer.version, protocolVersion))
	}
	if peer.id == me.id {
		return nil, fmt.Errorf("dialling: %w (session %v)", ErrSelfConnect, me.id)
	}
	if peer.nonce == me.nonce {
		return nil, hs.refuse(fmt.Errorf("%w: peer reflected the nonce", ErrHandshake))
	}
	if err := hs.checkSecrets(peer); err != nil {
		return nil, err
	}
	mySeq, err := hs.side.resolve(peer)
	if err != nil {
		return nil, hs.refuse(err)
	}
	a := auth{recvSeq: mySeq, proof: hs.proof(labelDialer, helloBody, challengeBody, mySeq)}
	if err := hs.send(frameAuth, a.marshal()); err != nil {
		return nil, err
	}
	b, err := hs.expect(frameAuth)
	if err != nil {
		return nil, err
	}
	theirs, err := parseAuth(b)
	if err != nil {
		return nil, hs.refuse(err)
	}
	if err := hs.verify(theirs.proof, labelAcceptor, helloBody, challengeBody, mySeq, theirs.recvSeq); err != nil {
		return nil, err
	}
	return &handshakeResult{
		peer: peer, localID: me.id, localSeq: mySeq, peerRecvSeq: theirs.recvSeq,
		maxMessage: min(hs.side.maxMessage, int(peer.maxMessage)),
	}, nil
}

// accept runs the acceptor's side. The acceptor sends CHALLENGE before it
// checks for itself, so that a self-connected dialer sees its own ID too
// (and neither side writes a refusal the other is not reading).
func (hs *handshaker) accept() (*handshakeResult, error) {
	helloBody, err := hs.expect(frameHello)
	if err != nil {
		return nil, err
	}
	peer, err := parseHello(helloBody)
	if err != nil {
		return nil, hs.refuse(err)
	}
	// Refusing here, while the dialer waits for CHALLENGE, means only one
	// side writes a refusal; on an unbuffered connection two would block
	// each other.
	if err := hs.checkSecrets(peer); err != nil {
		return nil, err
	}
	me := hs.newHello(hs.side.localID(peer.id), min(peer.version, protocolVersion), "")
	challengeBody := me.marshal()
	if err := hs.send(frameChallenge, challengeBody); err != nil {
		return nil, err
	}
	if peer.id == me.id {
		return nil, fmt.Errorf("accepting: %w (session %v)", ErrSelfConnect, me.id)
	}
	b, err := hs.expect(frameAuth)
	if err != nil {
		return nil, err
	}
	theirs, err := parseAuth(b)
	if err != nil {
		return nil, hs.refuse(err)
	}
	if err := hs.verify(theirs.proof, labelDialer, helloBody, challengeBody, theirs.recvSeq); err != nil {
		return nil, err
	}
	mySeq, err := hs.side.resolve(peer)
	if err != nil {
		return nil, hs.refuse(err)
	}
	a := auth{recvSeq: mySeq, proof: hs.proof(labelAcceptor, helloBody, challengeBody, theirs.recvSeq, mySeq)}
	if err := hs.send(frameAuth, a.marshal()); err != nil {
		return nil, err
	}
	return &handshakeResult{
		peer: peer, localID: me.id, localSeq: mySeq, peerRecvSeq: theirs.recvSeq,
		maxMessage: min(hs.side.maxMessage, int(peer.maxMessage)),
	}, nil
}
