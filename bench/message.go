package bench

import (
	"errors"
	"fmt"
)

// The messages the clients exchange are text, so that the same bytes are
// one message in a pipefs pipe in lines mode, a packet in packets mode, a
// record in a FIFO, and a datagram in a SEQPACKET socket:
//
//	offset  0     kind: 'D' data, 'E' end of the run (a marker)
//	        1-4   writer id, hex
//	        5-16  sequence number within the writer, hex
//	        17-32 CLOCK_MONOTONIC stamp, hex (latency workloads; else 0)
//	        33-   filler '.', and '\n' as the last byte
//
// Writers send data messages for the run's duration and then one marker
// per reader; a reader stops at its marker. With one queue the marker
// comes after everything its writer sent, so a reader that has its marker
// has seen all of its share.

const (
	kindData = 'D'
	kindEnd  = 'E'

	headerSize = 33
	// minMessage leaves room for the header and the newline.
	minMessage = headerSize + 1
)

type header struct {
	kind  byte
	id    int
	seq   uint64
	stamp int64
}

// newMessage returns a message buffer of size bytes with its filler.
func newMessage(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = '.'
	}
	b[size-1] = '\n'
	putHeader(b, header{kind: kindData})
	return b
}

func putHeader(b []byte, h header) {
	b[0] = h.kind
	putHex(b[1:5], uint64(h.id))
	putHex(b[5:17], h.seq)
	putHex(b[17:33], uint64(h.stamp))
}

// putSeq updates only the sequence number of a message.
func putSeq(b []byte, seq uint64) { putHex(b[5:17], seq) }

var errBadMessage = errors.New("malformed message")

// checkFrame checks the kind and the end of a message, the cheap part of
// parseHeader.
func checkFrame(b []byte) error {
	if len(b) < minMessage || (b[0] != kindData && b[0] != kindEnd) || b[len(b)-1] != '\n' {
		return fmt.Errorf("%w: %.40q", errBadMessage, b)
	}
	return nil
}

func parseHeader(b []byte) (header, error) {
	if err := checkFrame(b); err != nil {
		return header{}, err
	}
	id, ok1 := parseHex(b[1:5])
	seq, ok2 := parseHex(b[5:17])
	stamp, ok3 := parseHex(b[17:33])
	if !ok1 || !ok2 || !ok3 {
		return header{}, fmt.Errorf("%w: %.40q", errBadMessage, b)
	}
	return header{kind: b[0], id: int(id), seq: seq, stamp: int64(stamp)}, nil
}

const hexDigits = "0123456789abcdef"

// putHex writes v in hex, zero-padded to len(b) digits.
func putHex(b []byte, v uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = hexDigits[v&15]
		v >>= 4
	}
}

func parseHex(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
