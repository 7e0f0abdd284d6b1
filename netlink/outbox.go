package netlink

import "bytes"

// outbox holds the messages a session has taken from its endpoint and the
// peer has not acknowledged, numbered consecutively. It also knows the
// cumulative cost of the messages up to each one, which is what credit is
// counted in.
//
// Messages are kept as runs, the way the endpoint handed them over: one
// message, or several whole lines side by side (the lines of one write),
// which cross as one RUN frame. A run is split only where the peer
// acknowledged part of it.
type outbox struct {
	runs []outRun
	head int // runs[head] is the oldest unacknowledged run
	// base is the sequence number of the first message of runs[head];
	// acked = base-1.
	base uint64
	// baseOff is the cumulative cost through base-1.
	baseOff uint64
	n       int // messages in runs[head:]
}

// outRun is n messages in b: one message, or n ≥ 2 whole lines.
type outRun struct {
	b     []byte
	n     int
	first uint64 // the sequence number of its first message
	end   uint64 // the cumulative cost through its last message
}

func newOutbox() outbox { return outbox{base: 1} }

// cost is what a message counts against credit: its length, but at least
// one, so that credit also bounds how many empty messages can be in
// flight.
func cost(msg []byte) uint64 { return uint64(max(len(msg), 1)) }

// runCost is the cost of a run of n messages in b: lines are at least one
// byte each, so a run of lines costs its length.
func runCost(b []byte, n int) uint64 {
	if n == 1 {
		return cost(b)
	}
	return uint64(len(b))
}

func (o *outbox) len() int { return o.n }

// acked is the highest acknowledged sequence number.
func (o *outbox) acked() uint64 { return o.base - 1 }

// last is the highest sequence number taken.
func (o *outbox) last() uint64 { return o.base + uint64(o.n) - 1 }

// lastEnd is the cumulative cost of every message taken.
func (o *outbox) lastEnd() uint64 {
	if len(o.runs) == o.head {
		return o.baseOff
	}
	return o.runs[len(o.runs)-1].end
}

// push appends one message.
func (o *outbox) push(msg []byte) { o.pushRun(msg, 1) }

// pushRun appends a run of n messages: one message, or n whole lines.
func (o *outbox) pushRun(b []byte, n int) {
	o.runs = append(o.runs, outRun{b: b, n: n, first: o.last() + 1, end: o.lastEnd() + runCost(b, n)})
	o.n += n
}

// runAt returns the run that starts with message seq, which must be in
// (acked, last] and the first of a run (the session only sends whole
// runs, and acknowledgements only cut them at the front).
func (o *outbox) runAt(seq uint64) outRun {
	runs := o.runs[o.head:]
	lo, hi := 0, len(runs)
	for lo < hi { // the last run that starts at or before seq
		mid := (lo + hi) / 2
		if runs[mid].first <= seq {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	r := runs[lo-1]
	if r.first < seq {
		// Not expected; handled all the same: the rest of the run.
		r.b, r.n = cutLines(r.b, int(seq-r.first)), r.n-int(seq-r.first)
		r.first = seq
	}
	return r
}

// ackTo drops the messages up to seq, which must be in [acked, last]. A
// run acknowledged in part keeps its other lines.
func (o *outbox) ackTo(seq uint64) {
	for o.head < len(o.runs) && o.base <= seq {
		r := &o.runs[o.head]
		if lastSeq := r.first + uint64(r.n) - 1; lastSeq > seq {
			k := int(seq - r.first + 1)
			rest := cutLines(r.b, k)
			o.baseOff += uint64(len(r.b) - len(rest))
			r.b, r.n, r.first = rest, r.n-k, seq+1
			o.base, o.n = seq+1, o.n-k
			break
		}
		o.base, o.baseOff, o.n = r.first+uint64(r.n), r.end, o.n-r.n
		*r = outRun{} // let the messages be collected
		o.head++
	}
	if o.head == len(o.runs) {
		o.runs, o.head = o.runs[:0], 0
	} else if o.head >= 1024 && o.head*2 >= len(o.runs) {
		// Slide down rather than let the slice grow without bound.
		n := copy(o.runs, o.runs[o.head:])
		clear(o.runs[n:])
		o.runs, o.head = o.runs[:n], 0
	}
}

// cutLines returns b without its first k lines.
func cutLines(b []byte, k int) []byte {
	for range k {
		b = b[bytes.IndexByte(b, '\n')+1:]
	}
	return b
}

// renumber restarts numbering at 1 for a peer that has lost its state,
// keeping the messages.
func (o *outbox) renumber() {
	runs := append([]outRun(nil), o.runs[o.head:]...)
	*o = newOutbox()
	for _, r := range runs {
		o.pushRun(r.b, r.n)
	}
}

// drain removes and returns every message, one by one, resetting the
// numbering.
func (o *outbox) drain() [][]byte {
	var msgs [][]byte
	for _, r := range o.runs[o.head:] {
		msgs = append(msgs, splitRun(r.b, r.n)...)
	}
	*o = newOutbox()
	return msgs
}

// splitRun returns the n messages of a run one by one.
func splitRun(b []byte, n int) [][]byte {
	if n == 1 {
		return [][]byte{b}
	}
	msgs := make([][]byte, 0, n)
	for len(b) > 0 {
		m := b[:bytes.IndexByte(b, '\n')+1]
		msgs = append(msgs, m)
		b = b[len(m):]
	}
	return msgs
}
