package pipe

import (
	"strings"
	"sync"
	"sync/atomic"
)

// Pipe is one message pipe: the send side that `in` writes to and the
// receive side that `out` reads from. For a local pipe they are one queue.
type Pipe struct {
	nameMu sync.Mutex
	name   string

	// ctlMu makes Control's read-modify-write of the settings atomic, so
	// that concurrent commands cannot undo each other.
	ctlMu sync.Mutex

	// send is where writes go: recv itself for a local pipe, an outbox
	// while a link is attached (see Split). Writers lock it with
	// lockSend, which tolerates a concurrent switch.
	send atomic.Pointer[Queue]
	recv *Queue // where reads come from; fixed
}

// New returns a local pipe with the given settings.
func New(name string, s Settings) (*Pipe, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	q := newQueue(s)
	p := &Pipe{name: name, recv: q}
	p.send.Store(q)
	return p, nil
}

// Name returns the pipe's current name.
func (p *Pipe) Name() string {
	p.nameMu.Lock()
	defer p.nameMu.Unlock()
	return p.name
}

// SetName renames the pipe.
func (p *Pipe) SetName(name string) {
	p.nameMu.Lock()
	p.name = name
	p.nameMu.Unlock()
}

// NewReader returns the read state for a newly opened `out` file.
func (p *Pipe) NewReader() *Reader { return &Reader{p: p} }

// NewWriter returns the write state for a newly opened `in` file.
func (p *Pipe) NewWriter() *Writer { return &Writer{p: p} }

// Write offers the bytes of one write request. It returns len(data) when
// every message in it was queued; a write is all-or-nothing. With no room,
// it returns ErrWouldBlock if nonblock or req is nil, and otherwise parks
// req, returns ErrParked, and completes req later. Other errors: ErrTooBig,
// ErrClosed.
func (w *Writer) Write(data []byte, nonblock bool, req *WriteRequest, notify WriteNotifier) (int, error) {
	var d Deferred
	n, err := w.WriteDeferred(data, nonblock, req, notify, &d)
	d.Run()
	return n, err
}

// Deferred holds the completions and wake-ups an operation caused, for
// the caller to deliver with Run once it has answered its own request: a
// FUSE server answers the writer first, so that it can go on writing while
// the reader it woke is being answered.
type Deferred struct{ wk wakeups }

// Run delivers what was deferred; the Deferred can then be reused.
func (d *Deferred) Run() {
	d.wk.run()
	d.wk = wakeups{}
}

// WriteDeferred is Write, leaving the completions it causes in d.
func (w *Writer) WriteDeferred(data []byte, nonblock bool, req *WriteRequest, notify WriteNotifier, d *Deferred) (int, error) {
	// The copy is the message storage: messages are views of it, so a
	// write costs one allocation however many lines it holds.
	chunk := make([]byte, len(data))
	copy(chunk, data)

	wk := &d.wk
	q := w.p.lockSend()
	if q.closed {
		q.mu.Unlock()
		return 0, ErrClosed
	}
	total, err := q.measureLocked(w, chunk)
	if err != nil {
		q.mu.Unlock()
		return 0, err
	}
	if q.writers.n == 0 && q.fitsLocked(total) {
		q.commitLocked(w, chunk)
		q.settleLocked(wk)
		q.mu.Unlock()
		return len(data), nil
	}
	if nonblock || req == nil {
		q.wantWritable = true
		q.mu.Unlock()
		return 0, ErrWouldBlock
	}
	*req = WriteRequest{notify: notify, writer: w, chunk: chunk, q: q}
	q.writers.push(req)
	q.mu.Unlock()
	return 0, ErrParked
}

// Close ends the writer: in lines mode an unterminated tail becomes a
// message with '\n' added. Close may be called more than once.
func (w *Writer) Close() {
	var wk wakeups
	q := w.p.lockSend()
	if !q.closed && q.flushTailLocked(w) {
		q.settleLocked(&wk)
	}
	w.tail = nil
	q.mu.Unlock()
	wk.run()
}

// Read reads for one request of up to max bytes, appending views of message
// bytes to dst. cont says the request continues a read(2) that already
// returned bytes (the kernel's offset is non-zero): it finishes the message
// in progress, or returns nothing, but never starts the next message. An
// empty result with nil error is end of file only after the pipe closed;
// otherwise it is the short end of a continued read.
//
// With no message waiting it returns ErrWouldBlock if nonblock or req is
// nil, and otherwise parks req (ErrParked) to complete it later.
func (r *Reader) Read(dst [][]byte, max int, cont, nonblock bool, req *ReadRequest, notify ReadNotifier) ([][]byte, error) {
	return r.p.recv.read(r, dst, max, cont, nonblock, req, notify)
}

func (q *Queue) read(r *Reader, dst [][]byte, max int, cont, nonblock bool, req *ReadRequest, notify ReadNotifier) ([][]byte, error) {
	var wk wakeups
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return dst, ErrClosed
	}
	dst, ok := q.takeLocked(r, dst, max, cont)
	if ok {
		q.settleLocked(&wk)
		q.mu.Unlock()
		wk.run()
		return dst, nil
	}
	if nonblock || req == nil {
		q.wantReadable = true
		q.mu.Unlock()
		return dst, ErrWouldBlock
	}
	parts := req.Parts[:0]
	*req = ReadRequest{Parts: parts, notify: notify, reader: r, max: max, q: q}
	q.readers.push(req)
	q.mu.Unlock()
	return dst, ErrParked
}

// Close ends the reader: a partly read message goes back to the head of the
// queue, whole, for the next reader. Close may be called more than once.
func (r *Reader) Close() {
	q := r.p.recv
	var wk wakeups
	q.mu.Lock()
	if q.closed {
		// The queue was emptied; putting the message back would
		// leave it uncounted in a dead queue.
		r.partial, r.off = nil, 0
	} else if q.putBackLocked(r) {
		q.settleLocked(&wk)
	}
	q.mu.Unlock()
	wk.run()
}

// CancelRead withdraws a parked read. It reports false when the read was
// no longer parked: it has completed, or is completing, with its result.
func CancelRead(req *ReadRequest) bool {
	q := req.q
	if q == nil {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !req.wait.parked {
		return false
	}
	q.readers.remove(req)
	return true
}

// CancelWrite withdraws a parked write; nothing of it was queued. It
// reports false when the write was no longer parked.
func CancelWrite(req *WriteRequest) bool {
	q := req.q
	if q == nil {
		return false
	}
	var wk wakeups
	q.mu.Lock()
	if !req.wait.parked {
		q.mu.Unlock()
		return false
	}
	q.writers.remove(req)
	req.chunk = nil
	// Writers behind a withdrawn head may fit now: parked writes are
	// only retried when the queue changes, so retry them here.
	q.settleLocked(&wk)
	q.mu.Unlock()
	wk.run()
	return true
}

// Readiness is what poll(2) should report.
type Readiness struct {
	Readable bool // a read will not wait
	Writable bool // a write of one byte will not wait
	Closed   bool // the pipe was destroyed
}

// PollRead reports whether r can read without waiting, and arms w (if not
// nil) to be woken whenever that may have changed, until Unwatch.
func (r *Reader) PollRead(w Watcher) Readiness {
	q := r.p.recv
	q.mu.Lock()
	defer q.mu.Unlock()
	if w != nil {
		q.outWatchers = addWatcher(q.outWatchers, w)
	}
	rd := Readiness{Closed: q.closed, Readable: q.closed || r.partial != nil || q.msgs.len() > 0}
	if !rd.Readable {
		q.wantReadable = true
	}
	return rd
}

// PollWrite reports whether the pipe has room (and no blocked write is
// waiting ahead of a new one), and arms watcher w (if not
// nil) to be woken whenever that may have changed, until Unwatch.
func (w *Writer) PollWrite(v Watcher) Readiness {
	q := w.p.lockSend()
	defer q.mu.Unlock()
	if v != nil {
		q.inWatchers = addWatcher(q.inWatchers, v)
	}
	rd := Readiness{Closed: q.closed, Writable: q.closed || q.roomLocked()}
	if !rd.Writable {
		q.wantWritable = true
	}
	return rd
}

// Unwatch disarms a watcher armed by PollRead or PollWrite.
func (p *Pipe) Unwatch(w Watcher) {
	for _, q := range p.queues() {
		q.mu.Lock()
		q.outWatchers = removeWatcher(q.outWatchers, w)
		q.inWatchers = removeWatcher(q.inWatchers, w)
		q.mu.Unlock()
	}
}

func (p *Pipe) queues() []*Queue {
	if send := p.send.Load(); send != p.recv {
		return []*Queue{send, p.recv}
	}
	return []*Queue{p.recv}
}

// lockSend locks and returns the queue writes go to. The queue can be
// switched by Split or Join while a writer waits for its lock; the switch
// happens under the old queue's lock, so checking again once locked is
// enough.
func (p *Pipe) lockSend() *Queue {
	for {
		q := p.send.Load()
		q.mu.Lock()
		if p.send.Load() == q {
			return q
		}
		q.mu.Unlock()
	}
}

// Len is the number of messages waiting to be read, including one that a
// reader has partly read (it has not left the queue yet).
func (p *Pipe) Len() int {
	q := p.recv
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.count
}

// Stats is a snapshot of a pipe's state.
type Stats struct {
	Settings
	Messages  int    // waiting, including partly read ones
	Bytes     int64  // bytes of those messages
	Enqueued  uint64 // messages ever accepted
	Delivered uint64 // messages ever read to their last byte
	Readers   int    // reads blocked now
	Writers   int    // writes blocked now
	Closed    bool
}

// Stats returns a snapshot of the pipe's state.
func (p *Pipe) Stats() Stats {
	q := p.recv
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{
		Settings: q.s, Messages: q.count, Bytes: q.bytes,
		Enqueued: q.enqueued, Delivered: q.delivered,
		Readers: q.readers.n, Writers: q.writers.n, Closed: q.closed,
	}
}

// Settings returns the pipe's settings.
func (p *Pipe) Settings() Settings {
	q := p.recv
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.s
}

// Control applies one engine command (mode, capacity, maxmessage, batch,
// clear). Errors wrap ErrInvalid; ErrUnknownCommand means the verb is not
// the engine's. A refused command changes nothing.
func (p *Pipe) Control(cmd string) error {
	if f := strings.Fields(cmd); len(f) > 0 && f[0] == "clear" {
		if len(f) != 1 {
			return invalidf("clear takes no argument")
		}
		p.Clear()
		return nil
	}
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	s, err := p.Settings().Apply(cmd)
	if err != nil {
		return err
	}
	return p.SetSettings(s)
}

// SetSettings replaces the pipe's settings. Raising the capacity lets
// parked writers in at once.
func (p *Pipe) SetSettings(s Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	for _, q := range p.queues() {
		var wk wakeups
		q.mu.Lock()
		q.s = s
		if !q.closed {
			q.wantWritable = true // the room may have grown
			q.settleLocked(&wk)
		}
		q.mu.Unlock()
		wk.run()
	}
	return nil
}

// Clear drops every waiting message that no reader has started.
func (p *Pipe) Clear() {
	q := p.recv
	var wk wakeups
	q.mu.Lock()
	for q.msgs.len() > 0 {
		b, n := q.msgs.popRun()
		q.count -= n
		q.bytes -= int64(len(b))
	}
	q.msgs.clear()
	if !q.closed {
		q.wantWritable = true
		q.settleLocked(&wk)
	}
	q.mu.Unlock()
	wk.run()
}

// Close destroys the pipe: waiting messages are dropped, blocked and later
// reads see end of file, blocked and later writes fail with ErrClosed.
func (p *Pipe) Close() {
	for _, q := range p.queues() {
		var wk wakeups
		q.mu.Lock()
		q.closeLocked(&wk)
		q.mu.Unlock()
		wk.run()
	}
}
