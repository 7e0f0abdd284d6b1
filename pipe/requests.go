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

	notify ReadNotifier
	reader *Reader
	max    int
	q      *Queue
	wait   waitLinks[ReadRequest]
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

	notify WriteNotifier
	writer *Writer
	chunk  []byte
	q      *Queue
	wait   waitLinks[WriteRequest]
}

// waitLinks are the links of a parked request in its queue's wait list.
type waitLinks[T any] struct {
	prev, next *T
	parked     bool
}

func (r *ReadRequest) links() *waitLinks[ReadRequest]   { return &r.wait }
func (w *WriteRequest) links() *waitLinks[WriteRequest] { return &w.wait }

// waitList is an intrusive FIFO of parked requests: O(1) append, pop and
// removal, and no allocation.
type waitList[T any, P interface {
	*T
	links() *waitLinks[T]
}] struct {
	head, tail *T
	n          int
}

func (l *waitList[T, P]) push(x *T) {
	lx := P(x).links()
	lx.prev, lx.next = l.tail, nil
	if l.tail != nil {
		P(l.tail).links().next = x
	} else {
		l.head = x
	}
	l.tail = x
	lx.parked = true
	l.n++
}

func (l *waitList[T, P]) remove(x *T) {
	lx := P(x).links()
	if lx.prev != nil {
		P(lx.prev).links().next = lx.next
	} else {
		l.head = lx.next
	}
	if lx.next != nil {
		P(lx.next).links().prev = lx.prev
	} else {
		l.tail = lx.prev
	}
	*lx = waitLinks[T]{}
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
