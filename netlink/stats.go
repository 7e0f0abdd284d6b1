package netlink

// State is where a link or session stands.
type State int

const (
	// StateDown: no connection, none being made (a session between
	// connections, or a link told to disconnect).
	StateDown State = iota
	// StateConnecting: dialling, or waiting before the next dial; the
	// reason says why the last attempt failed, if it did.
	StateConnecting
	// StateListening: a rendezvous waiting for its partner to dial in.
	StateListening
	// StateUp: connected, handshake done, messages flowing.
	StateUp
	// StateFailed: stopped until told to reconnect, by TIMEOUT or by a
	// failure on a connection whose peer had authenticated (its refusal,
	// a broken protocol, a message too large): retrying would not cure it.
	StateFailed
	// StateClosed: closed for good.
	StateClosed
)

var stateNames = [...]string{"down", "connecting", "listening", "up", "failed", "closed"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Stats is a snapshot of a session's or link's status, as the pipe's ctl
// file shows it.
type Stats struct {
	State State
	// Reason says why the state is down or failed, or why the last
	// attempt to connect failed. A Link's is cleaned (CleanText); a
	// Session's may hold a peer's words as they came.
	Reason string
	// Peer is the address of the current or last peer.
	Peer string
	// Sent counts messages sent for the first time; Resent counts sends of
	// messages already sent on an earlier connection.
	Sent, Resent uint64
	// Received counts messages delivered to the local endpoint.
	Received uint64
	// Outbox is the messages taken from the endpoint and not yet
	// acknowledged by the peer (sent or not).
	Outbox int
	// MaxMessage is the max message negotiated on the last connection (0
	// before the first).
	MaxMessage int
	// Connections counts the connections that completed a handshake.
	Connections uint64
}
