package fs

import (
	"fmt"
	"path/filepath"
	"strings"

	"pipefs/netlink"
	"pipefs/pipe"
)

// A pipe's link: what moves the messages of its split queues (see
// pipe.Port) to and from somewhere else. Link state is guarded by
// Server.linkMu, one lock for every pipe, because a pipe link changes two
// pipes at once and links change rarely.
type link struct {
	kind, target string // as shown in status: "fifo /dir", "pipe other"
	port         *pipe.Port

	fifo *netlink.FIFOLink

	pipeLink  *netlink.PipeLink
	other     *pipeNode // the other end of a pipe link
	otherPort *pipe.Port
	isA       bool // this pipe is side a of pipeLink

	tcp        *netlink.Link    // link tcp
	session    *netlink.Session // a pipe made by a listening pipe for a peer
	acceptedBy *netlink.Server  // the server that made session

	server     *netlink.Server // listen tcp
	stopServer func()

	// unlinking is set when unlink of a TCP link has begun and closed
	// when it has finished in the background (see unlinkTCP).
	unlinking chan struct{}
}

// linkCommands are the ctl verbs handled here rather than by the engine.
var linkCommands = map[string]bool{"link": true, "unlink": true, "listen": true, "disconnect": true}

// linkAction is a checked link command, run after the write's settings
// took effect.
type linkAction func() error

// parseLinkCommand checks a link command of pipe pn and returns the action
// that carries it out.
func (s *Server) parseLinkCommand(pn *pipeNode, f []string) (linkAction, error) {
	switch f[0] {
	case "unlink":
		if len(f) != 1 {
			return nil, pipe.Invalidf("unlink takes no argument")
		}
		return func() error { return s.unlink(pn) }, nil
	case "listen", "disconnect":
		return s.parseTCPCommand(pn, f)
	case "link":
		if len(f) < 2 {
			return nil, pipe.Invalidf("link needs a kind: link tcp HOST:PORT, link fifo DIR, link pipe OTHER")
		}
		switch f[1] {
		case "tcp":
			return s.parseTCPCommand(pn, f)
		case "fifo":
			if len(f) != 3 {
				return nil, pipe.Invalidf("link fifo takes one directory")
			}
			dir := filepath.Clean(f[2])
			if !filepath.IsAbs(dir) {
				return nil, pipe.Invalidf("link fifo %s: the directory must be an absolute path", f[2])
			}
			if dir == s.mountpoint || strings.HasPrefix(dir, s.mountpoint+"/") {
				// The daemon must never open files of its own mount.
				return nil, pipe.Invalidf("link fifo %s: the directory must be outside the mount", f[2])
			}
			return func() error { return s.linkFIFO(pn, dir) }, nil
		case "pipe":
			if len(f) != 3 {
				return nil, pipe.Invalidf("link pipe takes one pipe name")
			}
			return func() error { return s.linkPipe(pn, f[2]) }, nil
		}
		return nil, pipe.Invalidf("link %s: unknown kind (want tcp, fifo or pipe)", f[1])
	}
	return nil, pipe.Invalidf("unknown command %q", f[0])
}

func (s *Server) linkFIFO(pn *pipeNode, dir string) error {
	if err := s.lockUnlinked(pn); err != nil {
		return err
	}
	defer s.linkMu.Unlock()
	port, err := pn.p.Split()
	if err != nil {
		return err
	}
	fl, err := netlink.StartFIFO(dir, port, int(pn.p.Settings().MaxMessage), s.log.With("pipe", pn.p.Name()))
	if err != nil {
		port.Join(nil)
		return pipe.Invalidf("%v", err)
	}
	pn.link = &link{kind: "fifo", target: dir, port: port, fifo: fl}
	s.log.Info("linked", "pipe", pn.p.Name(), "fifo", dir)
	return nil
}

func (s *Server) linkPipe(pn *pipeNode, otherName string) error {
	s.tree.mu.Lock()
	other := s.tree.pipes[otherName]
	s.tree.mu.Unlock()
	if other == nil {
		return pipe.Invalidf("link pipe %s: no such pipe", otherName)
	}
	if other == pn {
		return pipe.Invalidf("link pipe %s: a pipe cannot be linked to itself", otherName)
	}
	if err := s.lockSettled(pn, other); err != nil {
		return err
	}
	defer s.linkMu.Unlock()
	if pn.link != nil || other.link != nil {
		return pipe.Invalidf("link pipe %s: a pipe is already linked; unlink first", otherName)
	}
	pa, err := pn.p.Split()
	if err != nil {
		return err
	}
	pb, err := other.p.Split()
	if err != nil {
		pa.Join(nil)
		return err
	}
	pl := netlink.StartPipeLink(pa, pb)
	pn.link = &link{kind: "pipe", port: pa, pipeLink: pl, other: other, otherPort: pb, isA: true}
	other.link = &link{kind: "pipe", port: pb, pipeLink: pl, other: pn, otherPort: pa}
	s.log.Info("linked", "pipe", pn.p.Name(), "to", otherName)
	return nil
}

// unlink detaches pn's link. Nothing vanishes: messages the link had taken
// but not passed on, and those still waiting to be sent, are queued for
// pn's own readers (and the other pipe's, for a pipe link).
func (s *Server) unlink(pn *pipeNode) error {
	if err := s.lockSettled(pn); err != nil {
		return err
	}
	defer s.linkMu.Unlock()
	if pn.link == nil {
		return pipe.Invalidf("not linked")
	}
	s.unlinkLocked(pn)
	return nil
}

// unlinkLocked detaches pn's link, if any. Local links are detached before
// it returns; a TCP link finishes in the background (unlinkTCP).
func (s *Server) unlinkLocked(pn *pipeNode) {
	l := pn.link
	if l == nil || l.unlinking != nil {
		return
	}
	switch {
	case l.tcp != nil, l.session != nil:
		s.unlinkTCP(pn, l)
		return
	case l.server != nil:
		l.stopServer() // the pipes it made keep their own links
	case l.fifo != nil:
		l.port.Join(l.fifo.Close())
	case l.pipeLink != nil:
		fromA, fromB := l.pipeLink.Close()
		mine, theirs := fromA, fromB
		if !l.isA {
			mine, theirs = fromB, fromA
		}
		l.port.Join(mine)
		l.otherPort.Join(theirs)
		l.other.link = nil
	}
	pn.link = nil
	s.log.Info("unlinked", "pipe", pn.p.Name())
}

// linkStatus returns the link lines of a pipe's status.
func (s *Server) linkStatus(pn *pipeNode) string {
	s.linkMu.Lock()
	defer s.linkMu.Unlock()
	l := pn.link
	if l == nil {
		return "link none\n"
	}
	var b strings.Builder
	var sent, received uint64
	state := "up"
	switch {
	case l.tcp != nil || l.session != nil:
		var st netlink.Stats
		if l.tcp != nil {
			st = l.tcp.Stats()
		} else {
			st = l.session.Stats()
		}
		state = st.State.String()
		if st.Reason != "" {
			// A reason may carry a peer's words (its ERROR or BYE),
			// which must not end the line and add lines of their own.
			state += " " + netlink.CleanText(st.Reason)
		}
		if l.unlinking != nil {
			state = "unlinking"
		}
		peer := st.Peer
		if peer == "" {
			peer = "-"
		}
		fmt.Fprintf(&b, "link tcp %s %s\npeer %s\nsent %d\nreceived %d\nresent %d\n", l.target, state, peer, st.Sent, st.Received, st.Resent)
		msgs, _ := l.port.Outbox()
		fmt.Fprintf(&b, "outbox %d\n", msgs+st.Outbox)
		return b.String()
	case l.server != nil:
		fmt.Fprintf(&b, "link listen %s listening\npeer -\nsent 0\nreceived 0\nresent 0\noutbox 0\nsessions %d\n", l.target, l.server.Sessions())
		return b.String()
	case l.fifo != nil:
		sent, received = l.fifo.Counts()
		if err := l.fifo.Err(); err != nil {
			state = "failed " + err.Error()
		}
		fmt.Fprintf(&b, "link fifo %s %s\n", l.target, state)
	case l.pipeLink != nil:
		ab, ba := l.pipeLink.Counts()
		sent, received = ab, ba
		if !l.isA {
			sent, received = ba, ab
		}
		fmt.Fprintf(&b, "link pipe %s %s\n", l.other.p.Name(), state)
	}
	msgs, _ := l.port.Outbox()
	fmt.Fprintf(&b, "peer -\nsent %d\nreceived %d\nresent 0\noutbox %d\n", sent, received, msgs)
	return b.String()
}
