package netlink

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them with the
// details (addresses, sizes, the peer's words), so callers test with
// errors.Is and show Error() to the user.
var (
	// ErrBadFrame: bytes on the wire that are not a well-formed frame.
	ErrBadFrame = errors.New("malformed frame")
	// ErrFrameTooLarge: a frame longer than the limit in force.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrIntegrity: a frame on an authenticated connection failed its
	// tag: changed, replayed, reordered, dropped or forged on the way.
	// The connection is closed and nothing of the frame is acted on; it
	// ends that connection only, and a link connects again.
	ErrIntegrity = errors.New("frame failed authentication")
	// ErrHandshake: the peer broke the handshake (wrong magic, bad fields,
	// unexpected frames) — usually not a pipefs peer at all.
	ErrHandshake = errors.New("handshake failed")
	// ErrVersion: the peer speaks no protocol version this side does.
	ErrVersion = errors.New("incompatible protocol version")
	// ErrAuth: the shared-secret proof failed, or only one side has a
	// secret.
	ErrAuth = errors.New("authentication failed")
	// ErrSelfConnect: the connection leads back to the same session (a
	// rendezvous that dialled its own listener).
	ErrSelfConnect = errors.New("connected to itself")
	// ErrRefused: the peer closed the connection with an ERROR frame
	// (or, during the handshake, a BYE), whose text is the reason.
	ErrRefused = errors.New("refused by peer")
	// ErrProtocol: an authenticated peer broke the session rules
	// (sequence gap, data beyond credit, acknowledging unsent data).
	ErrProtocol = errors.New("protocol violation")
	// ErrResume: the peer's resume point does not fit this side's state,
	// so exactly-once delivery cannot be kept by resuming.
	ErrResume = errors.New("cannot resume session")
	// ErrMessageTooLarge: a local message is larger than the negotiated
	// max message, so it cannot be sent on this link.
	ErrMessageTooLarge = errors.New("message larger than the link's max message")
	// ErrPeerBye: the peer disconnected on purpose (a BYE frame); the
	// error is a *ByeError carrying its text.
	ErrPeerBye = errors.New("peer disconnected")
	// ErrDisconnected: this side disconnected on purpose (Disconnect).
	ErrDisconnected = errors.New("disconnected")
	// ErrClosed: the session, link or server was closed.
	ErrClosed = errors.New("closed")
	// ErrTimeout: a rendezvous found no partner within its TIMEOUT.
	ErrTimeout = errors.New("no peer within timeout")
	// ErrInsecure: an address off this host without a secret or mutual
	// TLS, and insecure was not asked for.
	ErrInsecure = errors.New("refusing unauthenticated link off this host")
	// ErrBusy: the session already has a connection and this one may not
	// take it over.
	ErrBusy = errors.New("session busy")
)

// errEndpoint marks errors of the local Endpoint (a destroyed pipe), which
// end a link rather than make it retry.
var errEndpoint = errors.New("endpoint")

// ByeError is the peer's BYE: it disconnected on purpose, with a text.
// It matches ErrPeerBye.
type ByeError struct{ Text string }

func (e *ByeError) Error() string {
	if e.Text == "" {
		return ErrPeerBye.Error()
	}
	return fmt.Sprintf("%v: %s", ErrPeerBye, e.Text)
}

func (e *ByeError) Unwrap() error { return ErrPeerBye }
