package pipe

import (
	"bytes"
	"sync"
)

// Queue holds the messages of one direction of a pipe, with its capacity,
// its parked readers and writers, and the watchers that poll it.
type Queue struct {
	mu sync.Mutex

	s      Settings
	msgs   ring
	count  int   // messages waiting, including ones a reader has partly read
	bytes  int64 // their bytes
	closed bool

	readers waitList[ReadRequest, *ReadRequest]
	writers waitList[WriteRequest, *WriteRequest]

	// Watchers are armed for the life of an open file; the want flags
	// record that somebody saw the queue not ready since the last
	// wake-up, so that a change is only announced when someone may be
	// waiting for it.
	outWatchers  []Watcher
	inWatchers   []Watcher
	wantReadable bool
	wantWritable bool

	// roomWatch, when a link is attached, is woken when the bytes queued
	// fall below roomMark, the level at which the link last looked.
	roomWatch Watcher
	roomMark  int64

	enqueued  uint64
	delivered uint64
}

func newQueue(s Settings) *Queue {
	return &Queue{s: s}
}

// Reader is the read state of one open `out` file: the message it is in the
// middle of, if any.
type Reader struct {
	p       *Pipe
	partial []byte // message being read; nil when none
	off     int    // bytes of partial already returned
	// whole makes every read take one message even with batch on: a
	// link's reader forwards messages, and joining them would merge
	// them into one on the other side.
	whole bool
}

// Writer is the write state of one open `in` file: in lines mode, the
// unterminated tail of what it wrote so far.
type Writer struct {
	p    *Pipe
	tail []byte
}

// fitsLocked reports whether total more bytes may be queued now. A write
// larger than the whole capacity is let in when the queue is empty, so that
// it cannot wait forever.
func (q *Queue) fitsLocked(total int64) bool {
	return total == 0 || q.count == 0 || q.bytes+total <= q.s.Capacity
}

// roomLocked reports whether a new write of one byte would be taken now:
// there is room, and no blocked write waits ahead of it (writes are served
// in arrival order).
func (q *Queue) roomLocked() bool {
	return q.bytes < q.s.Capacity && q.writers.n == 0
}

// measureLocked returns how many bytes of messages the write in chunk
// would queue, or ErrTooBig.
func (q *Queue) measureLocked(w *Writer, chunk []byte) (int64, error) {
	if q.s.Mode == Packets {
		if int64(len(chunk)) > q.s.MaxMessage {
			return 0, ErrTooBig
		}
		return int64(len(chunk)), nil
	}
	maxMsg := q.s.MaxMessage
	first := bytes.IndexByte(chunk, '\n')
	if first < 0 {
		// A line's '\n' is added at close, so the tail must leave
		// room for it.
		if int64(len(w.tail)+len(chunk)) > maxMsg-1 {
			return 0, ErrTooBig
		}
		return 0, nil
	}
	if int64(len(w.tail)+first+1) > maxMsg {
		return 0, ErrTooBig
	}
	last := bytes.LastIndexByte(chunk, '\n')
	if int64(len(chunk)-last-1) > maxMsg-1 {
		return 0, ErrTooBig
	}
	if mid := chunk[first+1 : last+1]; int64(len(mid)) > maxMsg {
		// Only a span longer than the limit can hold a line over it.
		for len(mid) > 0 {
			i := bytes.IndexByte(mid, '\n')
			if int64(i+1) > maxMsg {
				return 0, ErrTooBig
			}
			mid = mid[i+1:]
		}
	}
	return int64(len(w.tail) + last + 1), nil
}

// commitLocked queues the messages of a write measured by measureLocked
// and updates the writer's tail.
func (q *Queue) commitLocked(w *Writer, chunk []byte) {
	if q.s.Mode == Packets {
		if len(chunk) > 0 {
			q.pushLocked(chunk)
		}
		return
	}
	first := bytes.IndexByte(chunk, '\n')
	if first < 0 {
		w.tail = append(w.tail, chunk...)
		return
	}
	lines := chunk[:bytes.LastIndexByte(chunk, '\n')+1]
	rest := chunk[len(lines):]
	if len(w.tail) > 0 {
		m := make([]byte, len(w.tail)+first+1)
		copy(m[copy(m, w.tail):], chunk[:first+1])
		q.pushLocked(m)
		lines = lines[first+1:]
	}
	if len(lines) > 0 {
		// The write's whole lines stay together as one run.
		q.pushRunLocked(lines, bytes.Count(lines, newline))
	}
	if cap(w.tail) > 64<<10 && len(rest) == 0 {
		w.tail = nil // do not keep a long line's buffer forever
	} else {
		w.tail = append(w.tail[:0], rest...)
	}
}

// pushLocked queues one message. Messages cut from a write keep the rest of
// the write's chunk as capacity (see takeLocked); nothing ever appends to a
// queued message, so the bytes stay immutable.
func (q *Queue) pushLocked(m []byte) {
	q.pushRunLocked(m, 1)
}

// pushRunLocked queues n messages held side by side in b (see ring).
func (q *Queue) pushRunLocked(b []byte, n int) {
	q.msgs.pushRun(b, n)
	q.count += n
	q.bytes += int64(len(b))
	q.enqueued += uint64(n)
}

var newline = []byte{'\n'}

// flushTailLocked queues a writer's unterminated tail as a message with
// '\n' added. The bytes were already accepted by a write, so they are
// queued even over capacity: losing them is worse.
func (q *Queue) flushTailLocked(w *Writer) bool {
	if len(w.tail) == 0 {
		return false
	}
	m := make([]byte, len(w.tail)+1)
	copy(m, w.tail)
	m[len(w.tail)] = '\n'
	w.tail = nil
	q.pushLocked(m)
	return true
}

// takeLocked performs a read of up to max bytes for r into dst. cont
// means the request continues a read(2) that already returned bytes: it
// may finish the message in progress but must not start another. It
// returns false when there is nothing to read and the read should wait.
func (q *Queue) takeLocked(r *Reader, dst [][]byte, max int, cont bool) ([][]byte, bool) {
	if r.partial != nil {
		n := min(max, len(r.partial)-r.off)
		dst = append(dst, r.partial[r.off:r.off+n])
		r.off += n
		if r.off == len(r.partial) {
			q.deliveredLocked(len(r.partial))
			r.partial, r.off = nil, 0
		}
		return dst, true
	}
	if cont || max <= 0 {
		return dst, true // short read: end of this read(2)
	}
	if q.msgs.len() == 0 {
		return dst, false
	}
	m := q.msgs.pop()
	if len(m) > max {
		// Too big for the buffer: the reader owns the message until
		// its last byte is read, or puts it back when it closes.
		r.partial, r.off = m, max
		return append(dst, m[:max]), true
	}
	q.deliveredLocked(len(m))
	dst = append(dst, m)
	if !q.s.Batch || r.whole {
		return dst, true
	}
	left := max - len(m)
	for q.msgs.len() > 0 && left > 0 {
		b, n := q.msgs.peekRun()
		whole := len(b) <= left
		if whole {
			q.msgs.popRun()
		} else {
			// Whole lines from the front of the run, as many as fit.
			if n == 1 {
				break
			}
			end := bytes.LastIndexByte(b[:left], '\n') + 1
			if end == 0 {
				break
			}
			b, n = b[:end], bytes.Count(b[:end], newline)
			q.msgs.cutRun(end, n)
		}
		q.count -= n
		q.bytes -= int64(len(b))
		q.delivered += uint64(n)
		left -= len(b)
		dst = joinView(dst, b)
		if !whole {
			break // the next line does not fit
		}
	}
	return dst, true
}

// joinView appends b to dst, joined with dst's last view when b follows it
// in memory, so that a reply needs few iovecs. Lines of one write sit side
// by side in one allocation, and a view keeps the capacity of the chunk it
// was cut from: b lying within the last view's capacity proves they share
// the allocation, so the joined view keeps all of it alive for the
// collector.
func joinView(dst [][]byte, b []byte) [][]byte {
	if len(dst) > 0 && len(b) > 0 {
		last := dst[len(dst)-1]
		if cap(last)-len(last) >= len(b) && &last[:len(last)+1][len(last)] == &b[0] {
			dst[len(dst)-1] = last[:len(last)+len(b)]
			return dst
		}
	}
	return append(dst, b)
}

func (q *Queue) deliveredLocked(n int) {
	q.count--
	q.bytes -= int64(n)
	q.delivered++
}

// putBackLocked returns a partly read message to the head of the queue.
func (q *Queue) putBackLocked(r *Reader) bool {
	if r.partial == nil {
		return false
	}
	q.msgs.pushFront(r.partial)
	r.partial, r.off = nil, 0
	return true
}

// settleLocked completes every parked read that now has a message and every
// parked write that now fits, in arrival order, until neither can progress,
// and collects the watcher wake-ups the new state calls for.
func (q *Queue) settleLocked(wk *wakeups) {
	for progress := true; progress; {
		progress = false
		for q.readers.head != nil && q.msgs.len() > 0 {
			req := q.readers.head
			q.readers.remove(req)
			req.Parts, _ = q.takeLocked(req.reader, req.Parts[:0], req.max, false)
			req.Err = nil
			wk.read(req)
			progress = true
		}
		for q.writers.head != nil {
			req := q.writers.head
			total, err := q.measureLocked(req.writer, req.chunk)
			if err == nil && !q.fitsLocked(total) {
				break
			}
			q.writers.remove(req)
			if err == nil {
				q.commitLocked(req.writer, req.chunk)
				req.N = len(req.chunk)
			}
			req.Err, req.chunk = err, nil
			wk.write(req)
			progress = true
		}
	}
	if q.wantReadable && q.msgs.len() > 0 {
		q.wantReadable = false
		wk.wake(q.outWatchers)
	}
	if q.roomWatch != nil && q.bytes < q.roomMark {
		q.roomMark = q.bytes
		wk.wake([]Watcher{q.roomWatch})
	}
	if q.wantWritable && q.roomLocked() {
		q.wantWritable = false
		wk.wake(q.inWatchers)
	}
}

// closeLocked destroys the queue: parked reads end with end-of-file,
// parked writes with ErrClosed, and every watcher is woken.
func (q *Queue) closeLocked(wk *wakeups) {
	if q.closed {
		return
	}
	q.closed = true
	for q.readers.head != nil {
		req := q.readers.head
		q.readers.remove(req)
		req.Parts, req.Err = req.Parts[:0], ErrClosed
		wk.read(req)
	}
	for q.writers.head != nil {
		req := q.writers.head
		q.writers.remove(req)
		req.N, req.Err, req.chunk = 0, ErrClosed, nil
		wk.write(req)
	}
	q.msgs.clear()
	q.count, q.bytes = 0, 0
	wk.wake(q.outWatchers)
	wk.wake(q.inWatchers)
}

func addWatcher(list []Watcher, w Watcher) []Watcher {
	for _, x := range list {
		if x == w {
			return list
		}
	}
	return append(list, w)
}

func removeWatcher(list []Watcher, w Watcher) []Watcher {
	for i, x := range list {
		if x == w {
			list[i] = list[len(list)-1]
			list[len(list)-1] = nil
			return list[:len(list)-1]
		}
	}
	return list
}
