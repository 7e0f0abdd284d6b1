package netlink

import "context"

// BeginDisconnect is Disconnect without the wait: the BYE is arranged for
// the current connection (or the one whose handshake is finishing) before
// it returns, and the connection ends in the background once the peer has
// read it. A caller that must not block on the peer — a FUSE request loop
// serving a ctl write — uses this; Stats shows when the connection has
// ended.
func (s *Session) BeginDisconnect(text string) {
	// Disconnect marks the BYE under the session lock before it waits for
	// the connection to end; with a context that has already ended, that
	// wait returns at once (TestBeginDisconnectDoesNotWait pins this).
	s.beginDisconnect(byeRequest{text: text})
}

// beginDisconnect is BeginDisconnect for a BYE that may first let through
// what the endpoint held at the disconnect.
func (s *Session) beginDisconnect(bye byeRequest) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.disconnect(ctx, bye)
}
