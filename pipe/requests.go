package pipe

// A ReadNotifier learns that a parked read has completed.
type ReadNotifier interface {
	// ReadDone is called once, without engine locks held, when the
	// parked request has its result in Parts and Err.
	ReadDone(*ReadRequest)
}

// A WriteNotifier learns that a parked write has completed.
type WriteNotifier interface {
	// WriteDone is called once, without engine locks held, when the
	// parked request has its result in N and Err.
	WriteDone(*WriteRequest)
}

// A Watcher is woken when a queue it watches may have become readable or
// writable. Wake is called without engine locks held; it may be called
// when nothing changed, and must not call back into the engine
// synchronously in a way that waits for the wake-up itself.
type Watcher interface {
	Wake()
}

// ReadRequest is a read that can wait. The caller owns it and may reuse it
// once it has completed or been cancelled.
type ReadRequest struct {
	// Parts is the result: views of message bytes, in order. Message
	// bytes are never modified, so the views stay valid.
	Parts [][]byte
	// Err is nil, or ErrClosed when the pipe was destroyed (end of file).
	Err error

	notify     ReadNotifier
	reader     *Reader
	max        int
	q          *Queue
	prev, next *ReadRequest
	parked     bool
}

// N is the number of bytes in Parts.
func (r *ReadRequest) N() int {
	n := 0
	for _, p := range r.Parts {
		n += len(p)
	}
	return n
}

// WriteRequest is a write that can wait. The caller owns it and may reuse
// it once it has completed or been cancelled.
type WriteRequest struct {
	// N is the number of bytes accepted: all of the write, or 0 with Err.
	N int
	// Err is nil, ErrClosed or ErrTooBig.
	Err error

	notify     WriteNotifier
	writer     *Writer
	chunk      []byte
	q          *Queue
	prev, next *WriteRequest
	parked     bool
}

// readList is an intrusive FIFO of parked reads: O(1) append, pop and
// removal, and no allocation.
type readList struct {
	head, tail *ReadRequest
	n          int
}

func (l *readList) push(r *ReadRequest) {
	r.prev, r.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = r
	} else {
		l.head = r
	}
	l.tail = r
	r.parked = true
	l.n++
}

func (l *readList) remove(r *ReadRequest) {
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		l.head = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	} else {
		l.tail = r.prev
	}
	r.prev, r.next, r.parked = nil, nil, false
	l.n--
}

type writeList struct {
	head, tail *WriteRequest
	n          int
}

func (l *writeList) push(w *WriteRequest) {
	w.prev, w.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
	w.parked = true
	l.n++
}

func (l *writeList) remove(w *WriteRequest) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next, w.parked = nil, nil, false
	l.n--
}

// wakeups collects the completions and watcher wake-ups that a locked
// operation produced, to be delivered once the lock is released. The small
// inline arrays keep the common case free of allocations. They are filled
// by index and never referred to by a slice stored in the struct: such a
// pointer to itself would make every wakeups escape to the heap.
type wakeups struct {
	rbuf       [4]*ReadRequest
	wbuf       [4]*WriteRequest
	vbuf       [4]Watcher
	nr, nw, nv int
	// The rest, once the inline arrays are full.
	reads    []*ReadRequest
	writes   []*WriteRequest
	watchers []Watcher
}

func (w *wakeups) read(r *ReadRequest) {
	if w.nr < len(w.rbuf) {
		w.rbuf[w.nr] = r
		w.nr++
		return
	}
	w.reads = append(w.reads, r)
}

func (w *wakeups) write(r *WriteRequest) {
	if w.nw < len(w.wbuf) {
		w.wbuf[w.nw] = r
		w.nw++
		return
	}
	w.writes = append(w.writes, r)
}

func (w *wakeups) wake(list []Watcher) {
	for _, v := range list {
		if w.nv < len(w.vbuf) {
			w.vbuf[w.nv] = v
			w.nv++
		} else {
			w.watchers = append(w.watchers, v)
		}
	}
}

func (w *wakeups) run() {
	for _, r := range w.rbuf[:w.nr] {
		r.notify.ReadDone(r)
	}
	for _, r := range w.reads {
		r.notify.ReadDone(r)
	}
	for _, wr := range w.wbuf[:w.nw] {
		wr.notify.WriteDone(wr)
	}
	for _, wr := range w.writes {
		wr.notify.WriteDone(wr)
	}
	for _, v := range w.vbuf[:w.nv] {
		v.Wake()
	}
	for _, v := range w.watchers {
		v.Wake()
	}
}
