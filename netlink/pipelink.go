package netlink

import (
	"context"
	"sync"
	"sync/atomic"
)

// PipeLink joins two pipes of one mount into a two-way channel (pIPC's
// local Pipe with two ends): what is written to one pipe's `in` is read
// from the other's `out`, in order, with the receiving pipe's capacity as
// flow control. It moves messages without copying them.
type PipeLink struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	held   [2][]byte // a message each pump took but has not delivered
	moved  [2]atomic.Uint64
}

// StartPipeLink starts moving messages from a to b and from b to a.
func StartPipeLink(a, b Endpoint) *PipeLink {
	ctx, cancel := context.WithCancel(context.Background())
	l := &PipeLink{cancel: cancel}
	l.wg.Add(2)
	go l.pump(ctx, 0, a, b)
	go l.pump(ctx, 1, b, a)
	return l
}

func (l *PipeLink) pump(ctx context.Context, i int, from, to Endpoint) {
	defer l.wg.Done()
	for {
		m, err := from.Next(ctx)
		if err != nil {
			return
		}
		for to.Room() < int64(max(len(m), 1)) {
			select {
			case <-to.RoomChanged():
			case <-ctx.Done():
				l.held[i] = m // handed back by Close
				return
			}
		}
		if err := to.Deliver(m); err != nil {
			l.held[i] = m
			return
		}
		l.moved[i].Add(1)
	}
}

// Counts returns the messages moved from a to b and from b to a.
func (l *PipeLink) Counts() (aToB, bToA uint64) {
	return l.moved[0].Load(), l.moved[1].Load()
}

// Close stops the link and returns, for each side, the message it had
// taken from that side but not delivered, so the caller can give it back.
func (l *PipeLink) Close() (fromA, fromB [][]byte) {
	l.cancel()
	l.wg.Wait()
	if l.held[0] != nil {
		fromA = [][]byte{l.held[0]}
	}
	if l.held[1] != nil {
		fromB = [][]byte{l.held[1]}
	}
	return fromA, fromB
}
