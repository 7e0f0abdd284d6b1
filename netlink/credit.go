package netlink

// credit decides whether to grant the peer more credit, and how much. The
// limit is absolute — the cumulative cost the peer may have sent, counted
// from the first message of the session — so a CREDIT lost with a
// connection is simply superseded by the next. recvOff must have been
// read before Room is, so that a delivery in between makes the grant
// smaller, never larger than the room. force sends a grant held back
// (ackDelay has passed).
func (c *connRun) credit(recvOff uint64, force bool) (uint64, bool) {
	s := c.s
	limit := recvOff + uint64(max(s.ep.Room(), 0))
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.creditSent {
		// Every connection starts with a CREDIT, so the peer knows its
		// limit even if the last one was lost. A grant never shrinks: the
		// peer may already be using it.
		c.creditSent = true
		s.granted = max(s.granted, limit)
		return s.granted, true
	}
	if limit <= s.granted {
		return 0, false
	}
	// Grant in steps rather than per message read. A peer with at least
	// a max message of credit left can send whatever it has, so it waits
	// for the next step. One with less may be waiting for exactly this:
	// it gets the grant at once if that lets it send anything, or doubles
	// what it may send; and otherwise within ackDelay, so that a reader
	// taking one small message at a time from a full pipe does not cost a
	// CREDIT each.
	grow, unused, after := limit-s.granted, s.granted-recvOff, limit-recvOff
	switch {
	case grow >= creditStep:
	case unused >= uint64(c.maxMsg):
		return 0, false
	case force || after >= uint64(c.maxMsg) || 2*grow >= after:
	default:
		c.armFlushLocked()
		return 0, false
	}
	s.granted = limit
	return limit, true
}

// creditStep is the smallest growth of credit worth a CREDIT frame while
// the peer still has plenty.
const creditStep = 32 << 10
