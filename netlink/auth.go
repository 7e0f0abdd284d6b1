package netlink

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
)

// Frame authentication (docs/protocol.md, "Frame authentication"). The
// handshake proves that both sides hold the secret, but on its own it
// would prove nothing about the frames after it: whoever sits on the path
// could relay one daemon's handshake to another and keep the connection.
// So with a secret every frame after the handshake carries a tag made
// with a key of its direction, derived from the secret and the whole
// handshake. A frame is acted on only once its tag is verified; a frame
// that fails ends the connection.
//
// The tag is AES-256-GCM's, over the frame with a counter as the nonce:
// GHASH runs at several GB/s where HMAC-SHA256 runs at 1.5, which under a
// stream of lines is the difference between a few percent of a core and
// a third of one on each side. Nothing is encrypted: confidentiality is
// TLS's. The first macHead bytes of the frame (its length, type and fixed
// fields, or as much as there is) go in as GCM's plaintext, whose
// ciphertext is dropped, and the rest as its additional data; so a frame
// whose header and body lie apart (a large RUN written straight from the
// outbox) is tagged without being copied together.

// Sizes of frame authentication.
const (
	tagSize = 16 // GCM's tag, after the body, counted in the frame's length
	keySize = 32 // AES-256
	// macHead is how many bytes at the start of a frame are the tag's
	// plaintext: the largest header with its fixed fields (RUN's).
	macHead = runHeaderSize
)

// Labels of the key derivation (HKDF-SHA256 info strings), one per
// direction, and of the transcript hash.
const (
	labelTranscript    = "pipefs-link/2 transcript\x00"
	labelDialerKey     = "pipefs-link/2 dialer to acceptor"
	labelAcceptorKey   = "pipefs-link/2 acceptor to dialer"
	transcriptHashSize = sha256.Size
)

// transcriptHash is SHA-256 over the label and every handshake body as
// sent — HELLO, CHALLENGE, the dialer's AUTH, the acceptor's AUTH — each
// after its length (4 bytes): both nonces, both session IDs, the version,
// flags, max messages, the name asked for, both resume points and both
// proofs. Keys derived from it belong to this connection alone.
func transcriptHash(hello, challenge, dialerAuth, acceptorAuth []byte) []byte {
	h := sha256.New()
	h.Write([]byte(labelTranscript))
	var n [4]byte
	for _, b := range [][]byte{hello, challenge, dialerAuth, acceptorAuth} {
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	return h.Sum(nil)
}

// deriveKeys returns the keys of both directions: HKDF-SHA256 with the
// secret as input keying material, the transcript hash as salt, and the
// direction's label as info.
func deriveKeys(secret, transcript []byte) (dialerToAcceptor, acceptorToDialer []byte) {
	d, err := hkdf.Key(sha256.New, secret, transcript, labelDialerKey, keySize)
	if err != nil {
		panic(err) // only for a length HKDF cannot make; 32 it can
	}
	a, err := hkdf.Key(sha256.New, secret, transcript, labelAcceptorKey, keySize)
	if err != nil {
		panic(err)
	}
	return d, a
}

// frameKey tags (sending) or verifies (receiving) the frames of one
// direction of one connection. Frames are counted from 0; the count is
// the nonce, so a frame replayed, reordered, dropped or sent back the
// other way fails. It is used by one goroutine at a time.
type frameKey struct {
	aead  cipher.AEAD
	count uint64
	nonce [12]byte
	head  [macHead]byte
	out   [macHead + tagSize]byte
}

func newFrameKey(key []byte) *frameKey {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &frameKey{aead: aead}
}

// sum computes the tag of the next frame, whose bytes (length field to
// the end of the body) are a followed by b, with len(a) ≤ macHead; the
// split is only where the caller has the bytes, not part of the tag.
func (k *frameKey) sum(a, b []byte) []byte {
	p := append(k.head[:0], a...)
	n := min(macHead-len(p), len(b))
	p = append(p, b[:n]...)
	binary.BigEndian.PutUint64(k.nonce[4:], k.count)
	out := k.aead.Seal(k.out[:0], k.nonce[:], p, b[n:])
	return out[len(p):]
}

// seal appends the tag of the next frame, a followed by b, to dst and
// counts the frame.
func (k *frameKey) seal(dst, a, b []byte) []byte {
	dst = append(dst, k.sum(a, b)...)
	k.count++
	return dst
}

// open verifies the tag at the end of frame, a whole frame as received,
// and counts the frame if it is right.
func (k *frameKey) open(frame []byte) bool {
	body, tag := frame[:len(frame)-tagSize], frame[len(frame)-tagSize:]
	a := body[:min(len(body), macHead)]
	if subtle.ConstantTimeCompare(k.sum(a, body[len(a):]), tag) != 1 {
		return false
	}
	k.count++
	return true
}
