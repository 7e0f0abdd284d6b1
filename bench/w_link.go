package bench

import (
	"fmt"
	"net"
	"path/filepath"
)

// W8: a link. Two mounts joined by `link tcp` over loopback: side A is
// the mount W1–W5 use (the one given with --mount, so that a daemon
// started by hand can be profiled, or the private one), side B a private
// daemon of its own. Writers write to a pipe's `in` on A, readers read
// the linked pipe's `out` on B, so every message crosses both daemons and
// the TCP connection between them. Each round also measures the same
// workload on one local pipe of A, the two back to back in alternating
// order, and the ratio is taken round by round, as W6 does.
func runW8(e *env) error {
	a, err := e.sharedMount()
	if err != nil {
		return err
	}
	e.progress("W8: mounting side B")
	bd, err := e.startDaemon("link-b")
	if err != nil {
		return err
	}
	defer func() {
		if err := bd.stop(); err != nil {
			e.rep.failf("W8: %v", err)
		}
	}()
	b := bd.dir

	for _, w := range []struct {
		name, what    string
		local, linked string // ctl of the local pipe and of B's linked one
		figure        string
		title         string
		target        float64
		measure       func(label string, ch *channel) (streamResult, error)
	}{
		{"W8 64 B", "w8s", "", "", "w1", "64 B messages", 0.8,
			func(label string, ch *channel) (streamResult, error) {
				return e.measureStream(label, ch, 64, 1, 1)
			}},
		{"W8 batches", "w8b", "batch on", "batch on", "w3", "128 KiB writes of 64 B lines", 0.5, e.measureLines},
	} {
		local := e.rep.figure("w8."+w.figure+".local", "W8", "local "+w.title, "msg/s", fmtSI, nil)
		linked := e.rep.figure("w8."+w.figure+".link", "W8", "link "+w.title, "msg/s", fmtSI, nil)
		up := map[string]string{"w1": "W1", "w3": "W3"}[w.figure]
		ratio := e.rep.figure("w8."+w.figure+".ratio", "W8", "link / local "+up, "", fmtFixed(3),
			atLeast(w.target, fmt.Sprintf("≥%g×%s", w.target, up)))

		localName := e.pipeName(w.what + "local")
		_, removeLocal, err := e.makePipes(a, localName, 1, w.local)
		if err != nil {
			return err
		}
		defer removeLocal()
		linkName, removeLink, err := e.makeLink(a, b, w.what, w.linked)
		if err != nil {
			return err
		}
		defer removeLink()

		localCh := &channel{t: tPipefs, path: filepath.Join(a, localName)}
		linkCh := &channel{t: tPipefs, path: filepath.Join(a, linkName), peer: filepath.Join(b, linkName)}
		for round := range e.opts.Rounds {
			var lr, kr streamResult
			measureLocal := func() (err error) {
				e.progress("%s: round %d/%d: local", w.name, round+1, e.opts.Rounds)
				lr, err = w.measure(fmt.Sprintf("%s round %d local", w.name, round+1), localCh)
				return err
			}
			measureLink := func() (err error) {
				e.progress("%s: round %d/%d: link", w.name, round+1, e.opts.Rounds)
				kr, err = w.measure(fmt.Sprintf("%s round %d link", w.name, round+1), linkCh)
				return err
			}
			first, second := measureLocal, measureLink
			if round%2 == 1 {
				first, second = measureLink, measureLocal
			}
			if err := e.ctx.Err(); err != nil {
				return err
			}
			if err := first(); err != nil {
				return fmt.Errorf("%s round %d: %w", w.name, round+1, err)
			}
			if err := e.ctx.Err(); err != nil {
				return err
			}
			if err := second(); err != nil {
				return fmt.Errorf("%s round %d: %w", w.name, round+1, err)
			}
			local.set(tPipefs, round, e.opts.Rounds, lr.rate)
			linked.set(tPipefs, round, e.opts.Rounds, kr.rate)
			ratio.set(tPipefs, round, e.opts.Rounds, kr.rate/lr.rate)
		}
	}
	return nil
}

// makeLink creates a pipe of the same name on mounts a and b, with ctl
// applied to b's, links the two with `link tcp` on a free loopback port,
// and waits until both sides are up. It returns the pipe's name and a
// function that removes both pipes (which unlinks them).
func (e *env) makeLink(a, b, what, ctl string) (string, func() error, error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	link := fmt.Sprintf("link tcp 127.0.0.1:%d", port)
	if ctl != "" {
		link = ctl + "\n" + link
	}
	name := e.pipeName(what)
	// A first: its rendezvous finds nobody and listens; B dials it.
	_, removeA, err := e.makePipes(a, name, 1, fmt.Sprintf("link tcp 127.0.0.1:%d", port))
	if err != nil {
		return "", nil, err
	}
	_, removeB, err := e.makePipes(b, name, 1, link)
	if err != nil {
		removeA()
		return "", nil, err
	}
	remove := func() error {
		errB := removeB()
		errA := removeA()
		if errB != nil {
			return errB
		}
		return errA
	}
	for _, m := range []string{a, b} {
		if _, err := e.fsop(m, "waitlink", name, 1, ""); err != nil {
			remove()
			return "", nil, err
		}
	}
	return name, remove, nil
}

// freePort returns a TCP port of the loopback interface that nothing
// listens on now. Another process could take it before the link does;
// the link would then fail to come up, and the run says so.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
