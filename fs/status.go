package fs

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"pipefs/pipe"
)

// readSnapshot serves a read of a ctl or pending file. A read at offset 0
// takes a fresh snapshot of the content, and reads at later offsets
// continue that snapshot, so `cat` sees one consistent text and a program
// that re-reads from offset 0 (pread, or lseek and read) sees the current
// state, like a sysfs attribute.
func (h *handle) readSnapshot(off uint64, size uint32) []byte {
	h.snapMu.Lock()
	defer h.snapMu.Unlock()
	if off == 0 || h.snap == nil {
		h.snap = h.srv.content(h)
	}
	if off >= uint64(len(h.snap)) {
		return nil
	}
	end := min(uint64(len(h.snap)), off+uint64(size))
	return h.snap[off:end]
}

func (s *Server) content(h *handle) []byte {
	switch h.kind {
	case kindPending:
		return append(strconv.AppendInt(nil, int64(h.pn.p.Len()), 10), '\n')
	case kindCtl:
		return s.pipeStatus(h.pn)
	case kindRootCtl:
		return s.rootStatus()
	}
	return nil
}

func (s *Server) pipeStatus(pn *pipeNode) []byte {
	linkStatus := s.linkStatus(pn)
	st := pn.p.Stats()
	var b bytes.Buffer
	fmt.Fprintf(&b, "name %s\n", pn.p.Name())
	fmt.Fprintf(&b, "mode %s\n", st.Mode)
	fmt.Fprintf(&b, "batch %s\n", onOff(st.Batch))
	fmt.Fprintf(&b, "messages %d\n", st.Messages)
	fmt.Fprintf(&b, "bytes %d\n", st.Bytes)
	fmt.Fprintf(&b, "capacity %d\n", st.Capacity)
	fmt.Fprintf(&b, "maxmessage %d\n", st.MaxMessage)
	fmt.Fprintf(&b, "enqueued %d\n", st.Enqueued)
	fmt.Fprintf(&b, "delivered %d\n", st.Delivered)
	fmt.Fprintf(&b, "readers %d\n", st.Readers)
	fmt.Fprintf(&b, "writers %d\n", st.Writers)
	b.WriteString(linkStatus)
	pn.ctlMu.Lock()
	if pn.lastErr != "" {
		fmt.Fprintf(&b, "error %s\n", pn.lastErr)
	}
	pn.ctlMu.Unlock()
	return b.Bytes()
}

func (s *Server) rootStatus() []byte {
	d := s.opts.Defaults
	var b bytes.Buffer
	fmt.Fprintf(&b, "version %s\n", s.opts.Version)
	fmt.Fprintf(&b, "pipes %d\n", s.tree.count())
	fmt.Fprintf(&b, "pid %d\n", os.Getpid())
	fmt.Fprintf(&b, "mountpoint %s\n", s.mountpoint)
	fmt.Fprintf(&b, "mode %s\n", d.Mode)
	fmt.Fprintf(&b, "capacity %d\n", d.Capacity)
	fmt.Fprintf(&b, "maxmessage %d\n", d.MaxMessage)
	fmt.Fprintf(&b, "allow_other %s\n", onOff(s.opts.AllowOther))
	fmt.Fprintf(&b, "transport %s\n", s.Transport())
	return b.Bytes()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// control applies the commands of one write to a pipe's ctl file, one per
// line. The write is all-or-nothing: every command is checked against the
// settings as the earlier ones leave them before any takes effect, and a
// refused one fails the whole write with EINVAL, is logged, and is shown
// as an `error` line in the status until a later write succeeds.
func (s *Server) control(pn *pipeNode, data []byte) error {
	// One ctl write at a time per pipe, so that two writers' commands
	// cannot undo each other between reading and storing the settings.
	pn.ctlMu.Lock()
	defer pn.ctlMu.Unlock()
	set := pn.p.Settings()
	clearQueue := false
	var actions []linkAction
	var err error
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if f := strings.Fields(line); linkCommands[f[0]] {
			var act linkAction
			if act, err = s.parseLinkCommand(pn, f); err != nil {
				break
			}
			actions = append(actions, act)
			continue
		}
		if f := strings.Fields(line); f[0] == "clear" {
			if len(f) != 1 {
				err = pipe.Invalidf("clear takes no argument")
				break
			}
			clearQueue = true
			continue
		}
		if set, err = set.Apply(line); err != nil {
			break
		}
	}
	if err != nil {
		pn.lastErr = err.Error()
		s.log.Warn("ctl command refused", "pipe", pn.p.Name(), "err", pn.lastErr)
		return err
	}
	pn.lastErr = ""
	if err := pn.p.SetSettings(set); err != nil {
		return err
	}
	if clearQueue {
		pn.p.Clear()
	}
	// Link commands run last, in order; one that fails stops the rest.
	for _, act := range actions {
		if err := act(); err != nil {
			pn.lastErr = err.Error()
			s.log.Warn("ctl command failed", "pipe", pn.p.Name(), "err", pn.lastErr)
			return err
		}
	}
	return nil
}
