package netlink

import (
	"context"
	"sync"
)

// byeGate stands between a session and its endpoint so that a disconnect
// that does not wait keeps its order: nothing written after Disconnect
// returned goes out ahead of the BYE, on the connection that is ending.
// The session stops taking messages once it knows of the BYE, but a Next
// already waiting in the endpoint may still return a message written
// after the disconnect; the gate keeps that message back for the next
// connection instead.
//
// Disconnect closes the gate; whoever serves connections opens it before
// serving the next one; Close of the session's owner drains it.
type byeGate struct {
	Endpoint
	mu     sync.Mutex
	closed bool
	held   [][]byte // taken from the endpoint while closed, oldest first
}

func newByeGate(ep Endpoint) *byeGate { return &byeGate{Endpoint: ep} }

// close makes Next hand out nothing until open.
func (g *byeGate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// open lets Next hand out messages again, the held ones first. It is
// called between connections, when no Next is running.
func (g *byeGate) open() {
	g.mu.Lock()
	g.closed = false
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
	g.mu.Lock()
	closed := g.closed
	if !closed && len(g.held) > 0 {
		m := g.held[0]
		g.held = g.held[1:]
		g.mu.Unlock()
		return m, nil
	}
	g.mu.Unlock()
	if !closed {
		m, err := g.Endpoint.Next(ctx)
		if err != nil {
			return m, err
		}
		g.mu.Lock()
		if !g.closed {
			g.mu.Unlock()
			return m, nil
		}
		// Taken as the disconnect came: too late for this connection.
		g.held = append(g.held, m)
		g.mu.Unlock()
	}
	// The connection is ending with a BYE: wait for its end without
	// taking anything.
	<-ctx.Done()
	return nil, ctx.Err()
}
