package bench

import (
	"fmt"
)

// clockEvery is how many messages a writer sends between readings of
// the clock.
const clockEvery = 16

// writerResult is what a writer or line writer reports.
type writerResult struct {
	ID    int   `json:"id"`
	Sent  int64 `json:"sent"`  // data messages, markers not counted
	Start int64 `json:"start"` // monotonic ns before the first write
	End   int64 `json:"end"`   // after the last data message
}

// readerResult is what a reader or line reader reports.
type readerResult struct {
	Count    int64 `json:"count"` // data messages received
	Bytes    int64 `json:"bytes"`
	First    int64 `json:"first"` // monotonic ns of the first data message
	Last     int64 `json:"last"`  // of the last marker
	Disorder int64 `json:"disorder,omitempty"`
	Torn     int64 `json:"torn,omitempty"` // batch reads not ending at a line's end
	// Seen holds, per writer id, a bitmap of the sequence numbers
	// received (with --ids); Dups counts those received twice here.
	Seen map[int][]byte `json:"seen,omitempty"`
	Dups int64          `json:"dups,omitempty"`
}

// runWriter sends messages of c.size bytes, one write(2) each, for
// c.duration (or c.count messages), then c.markers end markers.
func runWriter(c *clientConfig) (any, error) {
	fd, err := c.openSend()
	if err != nil {
		return nil, err
	}
	msg := newMessage(c.size)
	putHeader(msg, header{kind: kindData, id: c.id})
	start := now()
	deadline := start + c.duration.Nanoseconds()
	var seq uint64
	for {
		if c.count > 0 {
			if int64(seq) == c.count {
				break
			}
		} else if seq > 0 && seq%clockEvery == 0 && now() >= deadline {
			break // after one message at least, however late this process ran
		}
		putSeq(msg, seq)
		if err := c.writeMsg(fd, msg); err != nil {
			return nil, fmt.Errorf("write message %d: %w", seq, err)
		}
		seq++
	}
	end := now()
	for range c.markers {
		putHeader(msg, header{kind: kindEnd, id: c.id, seq: seq})
		if err := c.writeMsg(fd, msg); err != nil {
			return nil, fmt.Errorf("write end marker: %w", err)
		}
	}
	return writerResult{ID: c.id, Sent: int64(seq), Start: start, End: end}, nil
}

// runReader receives messages of c.size bytes, one read(2) each, until
// c.markers end markers came.
func runReader(c *clientConfig) (any, error) {
	fd, err := c.openRecv()
	if err != nil {
		return nil, err
	}
	c.signalReady()
	buf := make([]byte, c.size+1)
	var r readerResult
	if c.ids {
		r.Seen = make(map[int][]byte)
	}
	var expect uint64
	for markers := 0; markers < c.markers; {
		m, err := c.readMsg(fd, buf)
		if err != nil {
			return nil, fmt.Errorf("read after %d messages: %w", r.Count, err)
		}
		if err := checkFrame(m); err != nil {
			return nil, err
		}
		if m[0] == kindEnd {
			markers++
			r.Last = now()
			continue
		}
		if r.Count == 0 {
			r.First = now()
		}
		r.Count++
		r.Bytes += int64(len(m))
		if c.order || c.ids {
			// Only what the checks need is decoded: on a FIFO
			// every nanosecond here is a visible share of a message.
			seq, ok := parseHex(m[5:17])
			if !ok {
				return nil, fmt.Errorf("%w: %.40q", errBadMessage, m)
			}
			if c.order {
				if seq != expect {
					r.Disorder++
				}
				expect = seq + 1
			}
			if c.ids {
				id, ok := parseHex(m[1:5])
				if !ok {
					return nil, fmt.Errorf("%w: %.40q", errBadMessage, m)
				}
				if !setBit(r.Seen, int(id), seq) {
					r.Dups++
				}
			}
		}
	}
	return r, nil
}

// setBit marks seq of writer id as seen; false if it already was.
func setBit(seen map[int][]byte, id int, seq uint64) bool {
	bm := seen[id]
	i := int(seq / 8)
	if i >= len(bm) {
		grown := make([]byte, max(2*len(bm), i+1, 1024))
		copy(grown, bm)
		bm = grown
		seen[id] = bm
	}
	bit := byte(1) << (seq % 8)
	if bm[i]&bit != 0 {
		return false
	}
	bm[i] |= bit
	return true
}

// runLineWriter writes c.linesPerWrite lines of c.size bytes with each
// write(2), for c.duration or until c.count lines, then c.markers marker
// lines, each with a write of its own.
func runLineWriter(c *clientConfig) (any, error) {
	fd, err := c.openSend()
	if err != nil {
		return nil, err
	}
	line := newMessage(c.size)
	block := make([]byte, 0, c.size*c.linesPerWrite)
	for range c.linesPerWrite {
		block = append(block, line...)
	}
	start := now()
	deadline := start + c.duration.Nanoseconds()
	var sent int64
	for {
		b := block
		if c.count > 0 {
			left := c.count - sent
			if left == 0 {
				break
			}
			if left < int64(c.linesPerWrite) {
				b = block[:left*int64(c.size)]
			}
		} else if sent > 0 && now() >= deadline {
			break
		}
		// A block is one message per line for pipefs; a FIFO takes it
		// as a stream.
		if err := c.sys.writeAll(fd, b); err != nil {
			return nil, fmt.Errorf("write after %d lines: %w", sent, err)
		}
		sent += int64(len(b) / c.size)
	}
	end := now()
	putHeader(line, header{kind: kindEnd, id: c.id})
	for range c.markers {
		if err := c.sys.writeAll(fd, line); err != nil {
			return nil, fmt.Errorf("write end marker: %w", err)
		}
	}
	return writerResult{ID: c.id, Sent: sent, Start: start, End: end}, nil
}

// runLineReader reads c.buf bytes at a time (pipefs in batch mode returns
// as many whole lines as fit) and counts lines of c.size bytes until
// c.markers marker lines came. It checks that every line ends where its
// size says, and, for pipefs, that every read ends at the end of a line.
func runLineReader(c *clientConfig) (any, error) {
	fd, err := c.openRecv()
	if err != nil {
		return nil, err
	}
	c.signalReady()
	buf := make([]byte, c.buf)
	var r readerResult
	pos := 0          // bytes of the current line seen so far
	var kind byte = 0 // first byte of the current line
	markers := 0
	for markers < c.markers {
		n, err := c.sys.readOnce(fd, buf)
		if err != nil {
			return nil, fmt.Errorf("read after %d lines: %w", r.Count, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("end of file after %d lines", r.Count)
		}
		if r.Count == 0 && r.First == 0 {
			r.First = now()
		}
		b := buf[:n]
		for len(b) > 0 {
			if pos == 0 {
				kind = b[0]
			}
			take := min(c.size-pos, len(b))
			pos += take
			b = b[take:]
			if pos < c.size {
				break
			}
			pos = 0
			if buf[n-len(b)-1] != '\n' || (kind != kindData && kind != kindEnd) {
				return nil, fmt.Errorf("line %d is torn (kind %q)", r.Count, kind)
			}
			if kind == kindEnd {
				markers++
				r.Last = now()
				continue
			}
			r.Count++
			r.Bytes += int64(c.size)
		}
		if pos != 0 && c.kind == tPipefs {
			r.Torn++
		}
	}
	return r, nil
}
