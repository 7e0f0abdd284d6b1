package pipe

import (
	"bytes"
	"context"
	"errors"
)

// ErrNotSplit: Join on a pipe that has no link attached; ErrSplit: Split
// on a pipe that has one.
var (
	ErrSplit    = errors.New("pipe: already linked")
	ErrNotSplit = errors.New("pipe: not linked")
)

// Port is a link's access to a pipe it is attached to. Split gives the pipe
// an outbox: from then on what local writers write to `in` waits there for
// the link to take (Next), with the pipe's capacity and framing, so a link
// that cannot send makes local writers wait exactly as a full local pipe
// does. What the peer sends is delivered (Deliver) to the pipe's own queue,
// which `out` reads, within the room the link advertised (Room).
type Port struct {
	p      *Pipe
	out    *Queue // the outbox
	reader Reader // the link's read state on the outbox
	room   chan struct{}
}

// Split attaches a link to the pipe. Messages already waiting stay where
// they are, for local readers.
func (p *Pipe) Split() (*Port, error) {
	in := p.recv
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil, ErrClosed
	}
	if p.send.Load() != in {
		return nil, ErrSplit
	}
	out := newQueue(in.s)
	// Pollers of `in` watch where writes go.
	out.inWatchers, in.inWatchers = in.inWatchers, nil
	out.wantWritable = true
	pt := &Port{p: p, out: out, room: make(chan struct{}, 1)}
	pt.reader.p = p
	pt.reader.whole = true
	in.roomWatch = pt
	in.roomMark = in.bytes
	p.send.Store(out)
	return pt, nil
}

// Wake implements Watcher for the inbox: its room may have grown.
func (pt *Port) Wake() {
	select {
	case pt.room <- struct{}{}:
	default:
	}
}

// Next takes the next message local writers queued, waiting until there is
// one or ctx ends. The message has left the pipe: the link owns it. After
// Join or Close it returns ErrClosed.
func (pt *Port) Next(ctx context.Context) ([]byte, error) {
	parts, err := pt.out.readWait(ctx, &pt.reader, MaxCapacity)
	if err != nil {
		return nil, err
	}
	if len(parts) == 1 {
		return parts[0], nil // messages are immutable: no copy needed
	}
	var m []byte
	for _, part := range parts {
		m = append(m, part...)
	}
	return m, nil
}

// NextRuns is Next for many messages at once, so that a link under load
// pays one wake-up and one lock for a batch rather than for each message,
// and moves the lines of a write as the one piece they are queued as. It
// waits for a message as Next does, then takes those waiting behind it
// without waiting: at most count messages in all, and beyond the first
// only while their bytes (each message counting max(len, 1)) stay within
// bytes. It appends them as runs: runs[i] holds counts[i] messages, one
// message, or (counts[i] ≥ 2) that many whole lines side by side, each
// ending with its only '\n'.
func (pt *Port) NextRuns(ctx context.Context, runs [][]byte, counts []int, count int, bytes int64) ([][]byte, []int, error) {
	m, err := pt.Next(ctx)
	if err != nil {
		return runs, counts, err
	}
	cur, curN := m, 1
	total := int64(max(len(m), 1))
	q := pt.out
	var wk wakeups
	q.mu.Lock()
	if !q.closed && pt.reader.partial == nil {
		for taken := 1; taken < count && q.msgs.len() > 0; {
			b, n := q.msgs.peekRun()
			size := int64(max(len(b), 1))
			whole := taken+n <= count && total+size <= bytes
			if whole {
				q.msgs.popRun()
			} else {
				// Whole lines from the front of the run, as many as
				// count and bytes allow.
				if n == 1 || total >= bytes {
					break
				}
				end := lastLineEnd(b[:min(int64(len(b)), bytes-total)])
				if k := count - taken; countLines(b[:end]) > k {
					end = len(b) - len(cutLines(b, k))
				}
				if end == 0 {
					break
				}
				b, n, size = b[:end], countLines(b[:end]), int64(end)
				q.msgs.cutRun(end, n)
			}
			q.count -= n
			q.bytes -= int64(len(b))
			q.delivered += uint64(n)
			if linesRun(cur, curN) && linesRun(b, n) && len(cur) > 0 && cap(cur) > len(cur) && &cur[:len(cur)+1][len(cur)] == &b[0] {
				cur, curN = cur[:len(cur)+len(b)], curN+n // the rest of the run Next cut from
			} else {
				runs, counts = append(runs, cur), append(counts, curN)
				cur, curN = b, n
			}
			taken += n
			total += size
			if !whole {
				break
			}
		}
		q.settleLocked(&wk)
	}
	q.mu.Unlock()
	wk.run()
	return append(runs, cur), append(counts, curN), nil
}

// linesRun reports whether b, holding n messages, is whole lines.
func linesRun(b []byte, n int) bool {
	return n > 1 || (len(b) > 0 && bytes.IndexByte(b, '\n') == len(b)-1)
}

func lastLineEnd(b []byte) int { return bytes.LastIndexByte(b, '\n') + 1 }

func countLines(b []byte) int { return bytes.Count(b, newline) }

// cutLines returns b without its first k lines.
func cutLines(b []byte, k int) []byte {
	for range k {
		b = b[bytes.IndexByte(b, '\n')+1:]
	}
	return b
}

// DeliverRuns is Deliver for many messages, given as runs: runs[i] holds
// counts[i] messages, one message, or (counts[i] ≥ 2) that many whole
// lines side by side, each ending with its only '\n', as a link receives
// a batch of lines. A run is queued as one slot, like the lines of one
// write. It queues every run and returns the number of messages, or none
// (0, ErrClosed) once the pipe is destroyed.
func (pt *Port) DeliverRuns(runs [][]byte, counts []int) (int, error) {
	q := pt.p.recv
	var wk wakeups
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, ErrClosed
	}
	n := 0
	for i, b := range runs {
		q.pushRunLocked(b, counts[i])
		n += counts[i]
	}
	q.roomMark = q.bytes
	q.settleLocked(&wk)
	q.mu.Unlock()
	wk.run()
	return n, nil
}

// Deliver queues a message from the peer for local readers. It is taken
// even over capacity: the link only sends within the room it advertised,
// and a message it already received must not be lost if the capacity was
// lowered meanwhile.
func (pt *Port) Deliver(m []byte) error {
	q := pt.p.recv
	var wk wakeups
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.pushLocked(m)
	q.roomMark = q.bytes
	q.settleLocked(&wk)
	q.mu.Unlock()
	wk.run()
	return nil
}

// Room is how many bytes the pipe can take from the peer now. RoomChanged
// is signalled when it may have grown since.
func (pt *Port) Room() int64 {
	q := pt.p.recv
	q.mu.Lock()
	defer q.mu.Unlock()
	q.roomMark = q.bytes
	return max(0, q.s.Capacity-q.bytes)
}

// RoomChanged returns the channel that is signalled (with a 1-buffered,
// non-blocking send) when Room may have grown.
func (pt *Port) RoomChanged() <-chan struct{} { return pt.room }

// Outbox returns the messages and bytes waiting to be taken by the link.
func (pt *Port) Outbox() (messages int, bytes int64) {
	pt.out.mu.Lock()
	defer pt.out.mu.Unlock()
	return pt.out.count, pt.out.bytes
}

// Join detaches the link: the pipe is local again. Nothing vanishes:
// unsent holds the messages the link took but the peer did not confirm,
// oldest first; they and everything still in the outbox are queued for
// local readers, behind what is already there, and writers waiting on the
// outbox wait on the pipe. Next returns ErrClosed from now on.
func (pt *Port) Join(unsent [][]byte) error {
	p, out, in := pt.p, pt.out, pt.p.recv
	var wk wakeups
	// Lock order: outbox, then inbox (Split holds only the inbox).
	out.mu.Lock()
	in.mu.Lock()
	if p.send.Load() != out {
		in.mu.Unlock()
		out.mu.Unlock()
		return ErrNotSplit
	}
	if !in.closed {
		for _, m := range unsent {
			in.pushLocked(m)
		}
		for out.msgs.len() > 0 {
			m := out.msgs.pop()
			in.msgs.push(m)
			in.count++
			in.bytes += int64(len(m))
		}
		for out.writers.head != nil {
			w := out.writers.head
			out.writers.remove(w)
			w.q = in
			in.writers.push(w)
		}
		in.inWatchers = append(in.inWatchers, out.inWatchers...)
		out.inWatchers = nil
		in.wantWritable = true
		in.roomWatch = nil
	}
	out.count, out.bytes = 0, 0
	p.send.Store(in)
	out.closeLocked(&wk) // ends a parked Next
	if !in.closed {
		in.settleLocked(&wk)
	}
	in.mu.Unlock()
	out.mu.Unlock()
	wk.run()
	return nil
}

// Post queues one whole message for the pipe's readers, whatever its mode
// and even over capacity: a listening pipe announces the pipes it made
// this way.
func (p *Pipe) Post(m []byte) error {
	q := p.recv
	var wk wakeups
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.pushLocked(m)
	q.settleLocked(&wk)
	q.mu.Unlock()
	wk.run()
	return nil
}
