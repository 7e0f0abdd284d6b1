package pipe

// ring is a FIFO of messages backed by a power-of-two circular slice. A
// message is a []byte that is never modified once queued, so readers may hand
// out views of it without copying. Each slot costs one slice header (24
// bytes); the ring halves itself when it becomes mostly empty so that a queue
// that once held a million messages does not keep their slots forever.
type ring struct {
	buf  [][]byte
	head int // index of the oldest message
	n    int // number of messages
}

const minRingSize = 16

func (r *ring) len() int { return r.n }

func (r *ring) push(m []byte) {
	if r.n == len(r.buf) {
		r.resize(max(minRingSize, 2*len(r.buf)))
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = m
	r.n++
}

// pushFront puts a message back at the head, for a reader that gave up a
// partly read message.
func (r *ring) pushFront(m []byte) {
	if r.n == len(r.buf) {
		r.resize(max(minRingSize, 2*len(r.buf)))
	}
	r.head = (r.head - 1) & (len(r.buf) - 1)
	r.buf[r.head] = m
	r.n++
}

func (r *ring) peek() []byte { return r.buf[r.head] }

func (r *ring) pop() []byte {
	m := r.buf[r.head]
	r.buf[r.head] = nil // let the payload be collected
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	if len(r.buf) > 4*minRingSize && r.n < len(r.buf)/8 {
		r.resize(len(r.buf) / 2)
	}
	return m
}

func (r *ring) clear() {
	*r = ring{}
}

func (r *ring) resize(size int) {
	nb := make([][]byte, size)
	if r.n > 0 {
		first := copy(nb, r.buf[r.head:min(len(r.buf), r.head+r.n)])
		copy(nb[first:], r.buf[:r.n-first])
	}
	r.buf = nb
	r.head = 0
}
