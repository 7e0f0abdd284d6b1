package fs

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"pipefs/netlink"
	"pipefs/pipe"
)

// TCP links: `link tcp HOST:PORT [TIMEOUT] [secret=PATH]` (pIPC's network
// pipe: whichever side comes first listens), `listen tcp [HOST]:PORT
// [secret=PATH]` (pIPC's PipeServer: each connection becomes a new pipe),
// and `disconnect [TEXT]`.

// tcpOptions are the words after the address of a tcp command.
type tcpOptions struct {
	timeout time.Duration
	secret  []byte
}

func (s *Server) parseTCPOptions(words []string, allowTimeout bool) (tcpOptions, error) {
	o := tcpOptions{secret: s.opts.Secret}
	for _, w := range words {
		if path, ok := strings.CutPrefix(w, "secret="); ok {
			b, err := os.ReadFile(path)
			if err != nil {
				return o, pipe.Invalidf("secret=%s: %v", path, err)
			}
			if b = []byte(strings.TrimSpace(string(b))); len(b) == 0 {
				return o, pipe.Invalidf("secret=%s: the file is empty", path)
			}
			o.secret = b
			continue
		}
		d, err := time.ParseDuration(w)
		if !allowTimeout || err != nil || d <= 0 {
			return o, pipe.Invalidf("%q: want a TIMEOUT such as 30s, or secret=PATH", w)
		}
		o.timeout = d
	}
	return o, nil
}

func (s *Server) netConfig(pn *pipeNode, o tcpOptions) netlink.Config {
	return netlink.Config{
		Secret:           o.secret,
		TLS:              s.opts.TLS,
		MaxMessage:       int(pn.p.Settings().MaxMessage),
		HandshakeTimeout: s.opts.HandshakeTimeout,
		Logger:           s.log.With("pipe", pn.p.Name()),
	}
}

func (s *Server) checkAddress(addr string, o tcpOptions) error {
	err := netlink.CheckAddress(addr, len(o.secret) > 0 || netlink.MutualTLS(s.opts.TLS), s.opts.Insecure)
	if err != nil {
		return pipe.Invalidf("%v", err)
	}
	return nil
}

func (s *Server) parseTCPCommand(pn *pipeNode, f []string) (linkAction, error) {
	switch {
	case f[0] == "link" && len(f) >= 3 && f[1] == "tcp":
		o, err := s.parseTCPOptions(f[3:], true)
		if err != nil {
			return nil, err
		}
		if err := s.checkAddress(f[2], o); err != nil { // HOST:PORT too
			return nil, err
		}
		addr := f[2]
		return func() error { return s.linkTCP(pn, addr, o) }, nil
	case f[0] == "listen":
		if len(f) < 3 || f[1] != "tcp" {
			return nil, pipe.Invalidf("listen takes tcp [HOST]:PORT [secret=PATH]")
		}
		o, err := s.parseTCPOptions(f[3:], false)
		if err != nil {
			return nil, err
		}
		if err := s.checkAddress(f[2], o); err != nil {
			return nil, err
		}
		addr := f[2]
		return func() error { return s.listenTCP(pn, addr, o) }, nil
	case f[0] == "disconnect":
		text := strings.Join(f[1:], " ")
		return func() error { return s.disconnect(pn, text) }, nil
	}
	return nil, pipe.Invalidf("link %s: unknown kind (want tcp, fifo or pipe)", f[1])
}

func (s *Server) linkTCP(pn *pipeNode, addr string, o tcpOptions) error {
	if err := s.lockUnlinked(pn); err != nil {
		return err
	}
	defer s.linkMu.Unlock()
	port, err := pn.p.Split()
	if err != nil {
		return err
	}
	l, err := netlink.NewLink(netlink.LinkConfig{
		Config:     s.netConfig(pn, o),
		Endpoint:   port,
		Rendezvous: &netlink.Rendezvous{Addr: addr},
		Timeout:    o.timeout,
	})
	if err != nil {
		port.Join(nil)
		return pipe.Invalidf("%v", err)
	}
	go l.Run(context.Background())
	pn.link = &link{kind: "tcp", target: addr, port: port, tcp: l}
	pn.tcpLink.Store(l)
	s.log.Info("linked", "pipe", pn.p.Name(), "tcp", addr)
	return nil
}

func (s *Server) listenTCP(pn *pipeNode, addr string, o tcpOptions) error {
	if err := s.lockUnlinked(pn); err != nil {
		return err
	}
	defer s.linkMu.Unlock()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return pipe.Invalidf("listen tcp %s: %v", addr, err)
	}
	cfg := s.netConfig(pn, o)
	var srv *netlink.Server // set before Serve, so before any Accept
	srv, err = netlink.NewServer(netlink.ServerConfig{
		Config: cfg,
		Accept: func(sess *netlink.Session) (netlink.Endpoint, error) { return s.acceptTCP(pn, srv, sess) },
	})
	if err != nil {
		ln.Close()
		return pipe.Invalidf("%v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Serve(ctx, ln)
	pn.link = &link{kind: "listen", target: ln.Addr().String(), server: srv, stopServer: func() { cancel(); ln.Close() }}
	s.log.Info("listening", "pipe", pn.p.Name(), "tcp", ln.Addr().String())
	return nil
}

// acceptTCP makes the pipe for a new peer of server pipe srvPipe: named
// as the peer asked (made unique), or SERVER.N; its name is queued on the
// server pipe, so that reading the server's out is accept().
func (s *Server) acceptTCP(srvPipe *pipeNode, srv *netlink.Server, sess *netlink.Session) (netlink.Endpoint, error) {
	set := srvPipe.p.Settings()
	var n *node
	var errno syscall.Errno
	if asked := peerPipeName(sess.PeerName()); asked != "" {
		n, errno = s.createUnique(asked, true, set)
	}
	if n == nil { // nothing (acceptable) asked, or too long to make unique
		n, errno = s.createUnique(srvPipe.p.Name(), false, set)
	}
	if errno != 0 {
		return nil, fmt.Errorf("create a pipe for the peer: %v", errno)
	}
	s.tree.forget(n.ino, 1) // the kernel holds no reference to it yet
	pn := n.pn
	port, err := pn.p.Split()
	if err != nil {
		return nil, err
	}
	s.linkMu.Lock()
	pn.link = &link{kind: "tcp", target: sess.Stats().Peer, port: port, session: sess, acceptedBy: srv}
	s.linkMu.Unlock()
	if err := srvPipe.p.Post([]byte(pn.p.Name() + "\n")); err != nil {
		s.log.Warn("could not announce an accepted pipe", "pipe", pn.p.Name(), "err", err)
	}
	s.log.Info("accepted", "server", srvPipe.p.Name(), "pipe", pn.p.Name(), "peer", sess.Stats().Peer)
	return port, nil
}

// fuseReservedName is a name the FUSE library answers lookups of itself
// (go-fuse's pollHackName): a pipe so named could not be opened.
const fuseReservedName = ".go-fuse-epoll-hack"

// peerPipeName is the pipe name a peer asked for, if it is one pipefs
// takes: a name mkdir would take, of printable characters only (letters,
// marks, numbers, punctuation, symbols and the ASCII space), so that it
// shows as itself on srv/out and in listings; otherwise "".
func peerPipeName(asked string) string {
	if checkPipeName(asked) != 0 || asked == fuseReservedName || strings.Contains(asked, "/") || !utf8.ValidString(asked) {
		return ""
	}
	for _, r := range asked {
		if !unicode.IsPrint(r) {
			return ""
		}
	}
	return asked
}

// createUnique creates the pipe base (if asIs) or else base.1, base.2,
// …: the first name that is free.
func (s *Server) createUnique(base string, asIs bool, set pipe.Settings) (*node, syscall.Errno) {
	for i := 0; i <= 1<<16; i++ {
		name := base
		if i > 0 {
			name += "." + strconv.Itoa(i)
		} else if !asIs {
			continue
		}
		n, errno := s.tree.create(name, set)
		if errno != syscall.EEXIST {
			return n, errno
		}
	}
	return nil, syscall.EEXIST
}

// disconnect arranges the BYE and returns: the connection ends in the
// background, however slow the peer, so a ctl write never holds one of
// the request loops (or the pipe's ctl lock) waiting for it.
func (s *Server) disconnect(pn *pipeNode, text string) error {
	if err := s.lockSettled(pn); err != nil {
		return err
	}
	defer s.linkMu.Unlock()
	l := pn.link
	switch {
	case l != nil && l.tcp != nil:
		l.tcp.Disconnect(text)
	case l != nil && l.session != nil:
		l.acceptedBy.Disconnect(l.session, text)
	default:
		return pipe.Invalidf("disconnect: not linked over tcp")
	}
	return nil
}

// unlinkTCP detaches a TCP link without waiting for it in the caller,
// which is a request loop: closing the link and taking back its messages
// happen in the background. Until then the status shows the link as
// unlinking and link commands on the pipe wait for it (lockSettled).
func (s *Server) unlinkTCP(pn *pipeNode, l *link) {
	l.unlinking = make(chan struct{})
	pn.tcpLink.Store(nil) // writes no longer reconnect it
	go func() {
		var unsent [][]byte
		if l.tcp != nil {
			unsent = l.tcp.Close()
		} else {
			unsent = l.acceptedBy.CloseSession(l.session)
		}
		l.port.Join(unsent)
		s.linkMu.Lock()
		if pn.link == l {
			pn.link = nil
		}
		s.linkMu.Unlock()
		close(l.unlinking)
		s.log.Info("unlinked", "pipe", pn.p.Name(), "returned", len(unsent))
	}()
}

// unlinkWait bounds how long a link command waits for the pipe's previous
// TCP link to finish unlinking. That takes moments, since closing a link
// does not wait for its peer; past the bound the command is refused
// rather than hold a request loop.
const unlinkWait = 2 * time.Second

// lockUnlinked is lockSettled for a command that links pn: it fails, and
// leaves the lock free, when pn is already linked.
func (s *Server) lockUnlinked(pn *pipeNode) error {
	if err := s.lockSettled(pn); err != nil {
		return err
	}
	if pn.link != nil {
		kind := pn.link.kind
		s.linkMu.Unlock()
		return pipe.Invalidf("already linked (%s); unlink first", kind)
	}
	return nil
}

// lockSettled takes s.linkMu once none of pns has an unlink in progress,
// waiting for those (without the lock) up to unlinkWait. On success the
// caller holds s.linkMu.
func (s *Server) lockSettled(pns ...*pipeNode) error {
	timeout := time.NewTimer(unlinkWait)
	defer timeout.Stop()
	for {
		s.linkMu.Lock()
		var busy *link
		for _, pn := range pns {
			if l := pn.link; l != nil && l.unlinking != nil {
				busy = l
			}
		}
		if busy == nil {
			return nil
		}
		s.linkMu.Unlock()
		select {
		case <-busy.unlinking:
		case <-timeout.C:
			return pipe.Invalidf("the previous link (%s %s) is still being unlinked; try again", busy.kind, busy.target)
		}
	}
}
