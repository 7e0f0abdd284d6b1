package netlink

// outbox holds the messages a session has taken from its endpoint and the
// peer has not acknowledged, numbered consecutively. It also knows the
// cumulative cost of the messages up to each one, which is what credit is
// counted in.
type outbox struct {
	msgs [][]byte
	ends []uint64 // ends[i]: cumulative cost through msgs[i]
	head int      // msgs[head] is the oldest unacknowledged message
	// base is the sequence number of msgs[head]; acked = base-1.
	base uint64
	// baseOff is the cumulative cost through base-1.
	baseOff uint64
}

func newOutbox() outbox { return outbox{base: 1} }

// cost is what a message counts against credit: its length, but at least
// one, so that credit also bounds how many empty messages can be in
// flight.
func cost(msg []byte) uint64 { return uint64(max(len(msg), 1)) }

func (o *outbox) len() int { return len(o.msgs) - o.head }

// acked is the highest acknowledged sequence number.
func (o *outbox) acked() uint64 { return o.base - 1 }

// last is the highest sequence number taken.
func (o *outbox) last() uint64 { return o.base + uint64(o.len()) - 1 }

// lastEnd is the cumulative cost of every message taken.
func (o *outbox) lastEnd() uint64 {
	if o.len() == 0 {
		return o.baseOff
	}
	return o.ends[len(o.ends)-1]
}

// push appends msg and returns its sequence number.
func (o *outbox) push(msg []byte) uint64 {
	end := o.lastEnd() + cost(msg)
	o.msgs = append(o.msgs, msg)
	o.ends = append(o.ends, end)
	return o.last()
}

// at returns message seq and the cumulative cost through it; seq must be
// in (acked, last].
func (o *outbox) at(seq uint64) ([]byte, uint64) {
	i := o.head + int(seq-o.base)
	return o.msgs[i], o.ends[i]
}

// ackTo drops the messages up to seq, which must be in [acked, last].
func (o *outbox) ackTo(seq uint64) {
	if seq < o.base {
		return
	}
	n := int(seq - o.base + 1)
	o.baseOff = o.ends[o.head+n-1]
	clear(o.msgs[o.head : o.head+n]) // let the messages be collected
	o.head += n
	o.base = seq + 1
	if o.head == len(o.msgs) {
		o.msgs, o.ends, o.head = o.msgs[:0], o.ends[:0], 0
	} else if o.head >= 1024 && o.head*2 >= len(o.msgs) {
		// Slide down rather than let the slices grow without bound.
		n := copy(o.msgs, o.msgs[o.head:])
		copy(o.ends, o.ends[o.head:])
		clear(o.msgs[n:])
		o.msgs, o.ends, o.head = o.msgs[:n], o.ends[:n], 0
	}
}

// renumber restarts numbering at 1 for a peer that has lost its state,
// keeping the messages.
func (o *outbox) renumber() {
	msgs := o.drain()
	for _, m := range msgs {
		o.push(m)
	}
}

// drain removes and returns every message, resetting the numbering.
func (o *outbox) drain() [][]byte {
	msgs := append([][]byte(nil), o.msgs[o.head:]...)
	*o = newOutbox()
	return msgs
}
