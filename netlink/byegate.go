package netlink

import (
	"context"
	"errors"
	"sync"
)

// byeGate stands between a session and its endpoint so that a disconnect
// that does not wait keeps its order both ways: what was written before
// Disconnect goes out ahead of the BYE (as far as the peer's credit
// allows), and nothing written after Disconnect returned does, on the
// connection that is ending.
//
// An endpoint that says how many messages wait in it (Outbox, as a
// pipe's Port does) lets the gate tell the two apart: the messages
// waiting when the gate closes are older than any written after, so the
// gate lets that many more through and holds back whatever comes after
// them, for the next connection. A take under way in the endpoint as the
// gate closes is let finish first, and passes whole, when messages are
// waiting (it is taking them: it ends at once); when none are, it may be
// waiting for the next write, which would come after the disconnect, so
// it is not waited for, and what it brings is held back — in the rare
// case that it had just taken the last messages written before, those
// then go after the BYE. Without Outbox nothing more is let through once
// the gate is closed.
//
// Disconnect closes the gate; whoever serves connections opens it before
// serving the next one; Close of the session's owner drains it.
type byeGate struct {
	Endpoint
	mu      sync.Mutex
	changed *sync.Cond // on mu: taking or closing changed
	taking  bool       // a take is under way in the endpoint
	closing bool       // close waits for that take: no other starts
	closed  bool
	allow   int      // while closed: how many more messages may pass
	held    [][]byte // taken from the endpoint while closed, oldest first
}

// errGateClosed is what the gate returns, taking nothing, once it has let
// through every message that was waiting when it closed.
var errGateClosed = errors.New("closed for a disconnect")

// outboxCounter is an endpoint that says how many messages wait in it.
type outboxCounter interface {
	Outbox() (messages int, bytes int64)
}

func newByeGate(ep Endpoint) *byeGate {
	g := &byeGate{Endpoint: ep}
	g.changed = sync.NewCond(&g.mu)
	return g
}

// close makes the gate let through only the messages waiting now, and
// reports whether there are any. It waits only for a take that is taking
// messages already waiting.
func (g *byeGate) close() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return g.allow > 0
	}
	oc, counts := g.Endpoint.(outboxCounter)
	if counts {
		g.closing = true
		for g.taking {
			if n, _ := oc.Outbox(); n == 0 {
				break // it may be waiting for a write: not for us to wait
			}
			g.changed.Wait()
		}
		g.closing = false
		g.changed.Broadcast()
	}
	g.closed, g.allow = true, 0
	if counts {
		g.allow, _ = oc.Outbox()
	}
	return g.allow > 0
}

// open lets Next hand out messages again, the held ones first. It is
// called between connections, when no Next is running.
func (g *byeGate) open() {
	g.mu.Lock()
	g.closed, g.allow = false, 0
	g.mu.Unlock()
}

// drain returns the held messages, for a session that is closed for good.
func (g *byeGate) drain() [][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	held := g.held
	g.held = nil
	return held
}

// Next implements Endpoint.
func (g *byeGate) Next(ctx context.Context) ([]byte, error) {
	runs, _, err := g.NextRuns(ctx, nil, nil, 1, 1)
	if len(runs) == 0 {
		return nil, err
	}
	return runs[0], err
}
