package netlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// DefaultMaxHandshakes bounds a Server's handshakes in progress.
const DefaultMaxHandshakes = 64

// ServerConfig configures a Server.
type ServerConfig struct {
	Config
	// Accept is called once per new peer, after it has authenticated, with
	// the session made for it (not yet serving; PeerName is the pipe name
	// the peer asked for, ID its own). It returns the session's endpoint,
	// or an error that refuses the peer (the peer is told the error's
	// text). The caller keeps the session to show its Stats, to
	// disconnect it (Server.Disconnect) and to close it
	// (Server.CloseSession), which also makes the server forget it. A peer that comes
	// back with the same session ID resumes its session without a call;
	// a peer that restarted comes back with a new ID and gets a new
	// session, while its old one stays until it is closed.
	Accept func(s *Session) (Endpoint, error)
	// MaxHandshakes bounds the handshakes in progress, and
	// MaxHandshakesPerSource those from one source address (an IPv6
	// /64). A connection beyond either closes the oldest handshake not
	// yet authenticated, from the source holding the most (its own, if it
	// is the one at its bound), provided that handshake has had half a
	// second; otherwise the new connection is closed at once. Zero means
	// DefaultMaxHandshakes, and a quarter of MaxHandshakes (at least 1).
	MaxHandshakes          int
	MaxHandshakesPerSource int
}

// Server accepts connections, each from a dialling peer (a Link with
// Dial, or a rendezvous that found the server listening), and gives each
// new peer a session of its own. Hostile peers cost only their own
// connection: at most MaxHandshakes handshakes run at once, each must
// deliver its HELLO within HelloTimeout and end within HandshakeTimeout,
// strangers that stall are closed to make room for newcomers, and nothing
// is created for a peer before it has proved the secret.
type Server struct {
	cfg       ServerConfig
	log       *slog.Logger
	strangers *strangerLog // failed and dropped connections, rate-bounded

	createMu sync.Mutex // serialises making sessions, so one peer gets one
	mu       sync.Mutex
	sessions map[SessionID]*Session // by the peer's session ID
	gates    map[*Session]*byeGate  // each session's, until CloseSession
}

// NewServer returns a server; Serve runs it on a listener.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Accept == nil {
		return nil, errors.New("netlink: a server needs an Accept function")
	}
	cfg.Config = cfg.Config.withDefaults()
	if cfg.MaxHandshakes <= 0 {
		cfg.MaxHandshakes = DefaultMaxHandshakes
	}
	if cfg.MaxHandshakesPerSource <= 0 {
		cfg.MaxHandshakesPerSource = max(1, cfg.MaxHandshakes/4)
	}
	return &Server{cfg: cfg, log: cfg.Logger, strangers: newStrangerLog(cfg.Logger), sessions: make(map[SessionID]*Session), gates: make(map[*Session]*byeGate)}, nil
}

// Sessions returns the number of sessions the server knows.
func (srv *Server) Sessions() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return len(srv.sessions)
}

// Serve accepts connections on ln until ctx ends, then closes ln, ends
// the handshakes in progress, and returns ctx's error. Connections that
// already serve a session keep serving it: they end with the session
// (CloseSession), so a server's peers keep their links when it stops
// listening.
func (srv *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	adm := newAdmission(srv.cfg.MaxHandshakes, srv.cfg.MaxHandshakesPerSource, srv.cfg.HelloTimeout, srv.strangers)
	bo := backoff{min: 5 * time.Millisecond, max: time.Second}
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("netlink: server: %w", err)
			}
			// Out of file descriptors and the like: wait, do not spin.
			srv.log.Warn("accept failed", "err", err)
			if sleep(ctx, bo.next()) != nil {
				return ctx.Err()
			}
			continue
		}
		bo.reset()
		p := adm.admit(conn)
		if p == nil {
			continue
		}
		wg.Go(func() {
			if sess, est := srv.handshake(ctx, p); est != nil {
				// Not Serve's to wait for: it lasts as long as the
				// connection, which outlives Serve.
				go sess.serve(est)
			}
		})
	}
}

// handshake runs the handshake of one admitted connection and returns the
// peer's session with the established connection, or nil.
func (srv *Server) handshake(ctx context.Context, p *pendingHandshake) (*Session, *established) {
	conn := p.conn
	var (
		chosen SessionID // the ID sent in CHALLENGE
		known  bool      // chosen is an existing session's
		sess   *Session
		slot   *runSlot
	)
	side := p.guard(handshakeSide{
		localID: func(peer SessionID) SessionID {
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if s, ok := srv.sessions[peer]; ok {
				chosen, known = s.id, true
			} else {
				chosen = newSessionID()
			}
			return chosen
		},
		resolve: func(peer *hello) (uint64, error) {
			s, err := srv.session(peer, chosen, known, conn.RemoteAddr())
			if err != nil {
				return 0, err
			}
			// A known peer that reconnects ends its old connection, which
			// may be half-open and not yet noticed. The connection's life
			// is the session's, not Serve's.
			sl, err := s.acquire(ctx, context.WithoutCancel(ctx), true)
			if err != nil {
				return 0, err
			}
			sess, slot = s, sl
			return s.resumePoint(peer.id), nil
		},
	})
	dc, res, err := handshake(ctx, conn, Acceptor, srv.cfg.Config, side)
	p.done()
	if err != nil {
		if slot != nil {
			sess.release(slot, nil)
		}
		if ctx.Err() == nil {
			srv.strangers.info("handshake failed", "peer", conn.RemoteAddr(), "err", err)
		}
		return nil, nil
	}
	if g := srv.gate(sess); g != nil {
		g.open()
	}
	return sess, &established{slot: slot, conn: dc, res: res}
}

func (srv *Server) gate(s *Session) *byeGate {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.gates[s]
}

// Disconnect ends the current connection of a session the server made, on
// purpose: the peer receives "BYE text" and, being the side that dials,
// connects again when it wants (a pipefs link at once, as after a drop).
// Like Link.Disconnect it does not wait for the peer, what was waiting to
// be sent goes out ahead of the BYE as far as credit allows, and nothing
// written after it returns does.
func (srv *Server) Disconnect(s *Session, text string) {
	drain := false
	if g := srv.gate(s); g != nil {
		drain = g.close()
	}
	s.beginDisconnect(byeRequest{text: text, drain: drain})
}

// CloseSession closes a session the server made, for good, and returns
// the messages taken from its endpoint that the peer never acknowledged,
// oldest first (see Session.Close).
func (srv *Server) CloseSession(s *Session) [][]byte {
	unsent := s.Close()
	srv.mu.Lock()
	g := srv.gates[s]
	delete(srv.gates, s)
	srv.mu.Unlock()
	if g != nil {
		unsent = append(unsent, g.drain()...)
	}
	return unsent
}

// session returns the session for an authenticated peer, making one (and
// asking Accept for its endpoint) if the peer is new.
func (srv *Server) session(peer *hello, chosen SessionID, known bool, addr net.Addr) (*Session, error) {
	srv.createMu.Lock()
	defer srv.createMu.Unlock()
	srv.mu.Lock()
	s := srv.sessions[peer.id]
	srv.mu.Unlock()
	// The CHALLENGE told the peer whether it is resuming (an ID it knows)
	// or starting over; the session must still be the one it was told.
	switch {
	case s != nil && s.id != chosen:
		return nil, fmt.Errorf("%w: session made meanwhile by another connection", ErrBusy)
	case s != nil:
		return s, nil
	case known:
		return nil, fmt.Errorf("%w: session closed meanwhile", ErrClosed)
	}
	s = newSession(srv.cfg.Config, nil, chosen)
	s.peerName, s.peerAddr = peer.name, addr.String()
	ep, err := srv.cfg.Accept(s)
	if err != nil {
		return nil, fmt.Errorf("refused: %w", err)
	}
	g := newByeGate(ep)
	s.ep = g
	s.onClose = func() { srv.forget(peer.id, s) }
	srv.mu.Lock()
	srv.sessions[peer.id] = s
	srv.gates[s] = g
	srv.mu.Unlock()
	srv.log.Info("new session", "peer", addr, "name", peer.name, "peer_session", peer.id)
	return s, nil
}

func (srv *Server) forget(peer SessionID, s *Session) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.sessions[peer] == s {
		delete(srv.sessions, peer)
	}
}
