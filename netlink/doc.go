// Package netlink links a pipe to a peer over TCP: the wire protocol, the
// handshake, and sessions that deliver messages exactly once, in order,
// with end-to-end flow control, across dropped connections. It knows
// nothing of FUSE or files: the pipe side is an [Endpoint]. The wire
// protocol is specified in docs/protocol.md.
//
// (The same package also holds the local links, [FIFOLink] and
// [PipeLink], which use the same Endpoint.)
//
// # Sessions
//
// A [Session] moves messages between its Endpoint and one peer. Each
// direction numbers its messages from 1. The receiver delivers message n
// only after n-1, discards anything it already delivered, and
// acknowledges cumulatively (ACK n: everything up to n is delivered),
// in batches: every Config.AckEvery messages, with any other frame it
// writes, and otherwise within 2 ms. Under load every step moves batches:
// the lines of one write cross as one RUN frame to a peer that accepts
// them (docs/protocol.md), and endpoints with [BatchEndpoint] hand over
// and take runs of messages. The sender keeps every message until it is
// acknowledged.
// Sessions outlive connections: [Session.Run] serves one connection, and
// the next one's handshake tells each side where the other stopped, so
// the sender resends exactly what was not delivered. Both sides keep a
// random [SessionID] for the session's life; a peer that comes back with
// another ID has lost its state (its process restarted), and the session
// starts numbering again, resending everything it holds. Exactly-once
// delivery therefore holds while both processes live; across a restart,
// messages that were in flight may be delivered twice, never lost.
// [Session.Close] (and Link.Close) settles a live connection before it
// cuts it — no more messages taken, sent or delivered, an ACK of all
// delivered, a bounded wait for the peer's ACKs — so that what it hands
// back is what the peer did not deliver, unless the peer is slow.
//
// # Flow control
//
// A receiver grants credit in bytes (each message counting max(len, 1)):
// CREDIT L allows the sender to have sent messages whose cumulative size,
// from the first of the session, is at most L. It grants from
// [Endpoint.Room] in steps, and while the peer may be waiting for credit
// also whenever [Endpoint.RoomChanged] fires. The
// sender takes a message from its Endpoint only while it has credit left
// and fewer than Config.MaxUnacked messages unacknowledged; otherwise
// messages wait in the local outbox, where local writers see a full pipe.
// So nothing is ever dropped to make room, a peer that stops reading
// stops the sender, and a session holds at most about one inbox of the
// peer's plus one message.
//
// # Links and servers
//
// A [Link] owns a session across connections: it dials (Dial) or meets its
// partner (pIPC's network pipe, [Rendezvous]), serves the connection, and
// on a drop connects again with capped exponential backoff.
// [Link.Disconnect] sends BYE, after what was waiting to be sent, and
// keeps the link down until [Link.Reconnect]. An attempt that fails in
// the handshake is retried the same way, even a refusal or a wrong proof:
// before the peer has proved the secret, that may be a stranger's doing.
// TIMEOUT, and failures on a connection whose peer had authenticated (its
// refusal, a broken protocol), leave the link failed until Reconnect. A
// [Server] accepts connections and gives each new peer a
// session of its own through its Accept callback; a peer that reconnects
// resumes its session.
//
// # Security
//
// With a secret, both sides prove they hold it by HMAC-SHA256 over both
// sides' fresh nonces and session IDs; it never crosses the wire, and a
// peer that fails is cut off before any message moves either way. Every
// frame after the handshake then carries a tag (AES-256-GCM used as a MAC,
// with a key per direction derived by HKDF from the secret and the whole
// handshake, and a frame counter as nonce), checked before the frame is
// acted on, so that a relay without the secret that passed a handshake on
// can do nothing further in the connection (auth.go); a process also
// refuses its own HELLO relayed back to it (hellos.go). Without a secret
// frames carry no tags: loopback is trusted, or mutual TLS protects them.
// [CheckAddress] refuses addresses off this host unless the link is
// authenticated (a secret, or mutual TLS from [LoadTLS]) or the user asked
// for insecure. Hostile peers cost only their connection: lengths are
// checked before anything is allocated, handshakes are bounded by
// Config.HandshakeTimeout (the peer's HELLO by Config.HelloTimeout), and
// a listening side runs a bounded number at once, from each source
// address a share, closing a stalled stranger's handshake to make room
// for a newcomer (see admission). Words of a peer shown to the user go
// through [CleanText].
//
// # The Endpoint contract
//
// Beyond what [Endpoint] documents: Next and Deliver are each called from
// one goroutine at a time; RoomChanged is a 1-buffered channel the
// endpoint signals without blocking (the same channel every call); Deliver
// is handed messages that may share one allocation (small messages are cut
// from one buffer) and must not be modified; the peer's BYE reaches
// Deliver as the line "BYE TEXT\n" (or "BYE\n"), outside credit, so that
// `head -n 1` and `read` see it. An empty inbox must have room
// for the link's max message.
//
// # Goroutines
//
// Serving a connection takes three goroutines: a reader (frames in,
// deliveries, ACK and CREDIT bookkeeping), a writer (frames out, batched
// through a 64 KiB buffer flushed only when nothing more is ready), which
// is the caller's own (Run's), and a puller (takes messages from the
// endpoint within credit). All three end when the connection does: a read
// or write error, the peer's BYE, ctx, [Session.Close], or a newer
// connection taking over; the connection is then closed, which unblocks
// them. Run returns only after all three have. A Link adds none beyond
// Run's; a Server one per connection (its handshake, then its writer).
// Nothing outlives Close or the end of ctx, except that the connections a
// Server has handed to sessions outlive Serve: they end with their
// sessions (Server.CloseSession), so that a server that stops listening
// does not cut its peers.
//
// A *slog.Logger is passed in Config; nil discards.
package netlink
