package pipe

import "bytes"

// ring is a FIFO of messages backed by a power-of-two circular slice. A
// message is a []byte that is never modified once queued, so readers may hand
// out views of it without copying.
//
// A slot holds a run: one message, or several whole lines that one write
// brought, side by side in its buffer. Keeping a write's lines in one slot
// makes a batch of 2,048 lines cost one push and one pop instead of 2,048,
// and a reader that takes one line at a time cuts it off the front of the
// run. Runs of more than one message only ever hold lines, so each of their
// messages ends at a '\n'; a single message may hold any bytes.
//
// Each slot costs 32 bytes; the ring halves itself when it becomes mostly
// empty so that a queue that once held a million messages does not keep
// their slots forever.
type ring struct {
	buf  []run
	head int // index of the oldest run
	n    int // number of runs
}

// run is one slot: b holds n messages.
type run struct {
	b []byte
	n int
}

const minRingSize = 16

// len is the number of runs; it is zero exactly when the ring holds no
// message.
func (r *ring) len() int { return r.n }

// push queues one message.
func (r *ring) push(m []byte) { r.pushRun(m, 1) }

// pushRun queues n ≥ 1 messages held in b: n lines, or one message.
func (r *ring) pushRun(b []byte, n int) {
	if r.n == len(r.buf) {
		r.resize(max(minRingSize, 2*len(r.buf)))
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = run{b, n}
	r.n++
}

// pushFront puts a message back at the head, for a reader that gave up a
// partly read message.
func (r *ring) pushFront(m []byte) {
	if r.n == len(r.buf) {
		r.resize(max(minRingSize, 2*len(r.buf)))
	}
	r.head = (r.head - 1) & (len(r.buf) - 1)
	r.buf[r.head] = run{m, 1}
	r.n++
}

// pop removes and returns the oldest message.
func (r *ring) pop() []byte {
	h := &r.buf[r.head]
	if h.n == 1 {
		m, _ := r.popRun()
		return m
	}
	m := h.b[:bytes.IndexByte(h.b, '\n')+1]
	h.b, h.n = h.b[len(m):], h.n-1
	return m
}

// peekRun returns the oldest run.
func (r *ring) peekRun() ([]byte, int) {
	h := &r.buf[r.head]
	return h.b, h.n
}

// popRun removes and returns the oldest run.
func (r *ring) popRun() ([]byte, int) {
	h := r.buf[r.head]
	r.buf[r.head] = run{} // let the payload be collected
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	if len(r.buf) > 4*minRingSize && r.n < len(r.buf)/8 {
		r.resize(len(r.buf) / 2)
	}
	return h.b, h.n
}

// cutRun removes the first size bytes, holding n lines, from the oldest
// run, which holds more.
func (r *ring) cutRun(size, n int) {
	h := &r.buf[r.head]
	h.b, h.n = h.b[size:], h.n-n
}

func (r *ring) clear() {
	*r = ring{}
}

func (r *ring) resize(size int) {
	nb := make([]run, size)
	if r.n > 0 {
		first := copy(nb, r.buf[r.head:min(len(r.buf), r.head+r.n)])
		copy(nb[first:], r.buf[:r.n-first])
	}
	r.buf = nb
	r.head = 0
}
