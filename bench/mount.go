package bench

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// daemon is a private pipefs mount that the driver started: the pipefs
// binary serving `mount DIR` as a process of its own, since a process
// that serves a FUSE mount must not also be a client of it.
type daemon struct {
	dir    string
	pid    int // from the mount's ctl
	cmd    *exec.Cmd
	stderr lockedBuffer
	exited chan struct{}
}

// startDaemon mounts a private pipefs on a new directory under the run's
// temporary directory and waits until it is ready.
func (e *env) startDaemon(name string) (*daemon, error) {
	d := &daemon{dir: filepath.Join(e.tmp, name), exited: make(chan struct{})}
	// Not tied to e.ctx: on cancellation the daemon must still be
	// stopped cleanly, by stop.
	d.cmd = exec.Command(e.opts.Exe, "mount", d.dir)
	d.cmd.Stderr = &d.stderr
	// Its own process group: a Ctrl-C at the terminal reaches the
	// driver, which stops the daemon after its clients.
	// If the driver dies, the daemon unmounts (SIGTERM) rather than
	// leaving a mount behind.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pipefs mount: %w", err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	info, err := e.mountInfo(d.dir)
	if err != nil {
		d.stop()
		return nil, fmt.Errorf("private mount: %w; daemon log: %s", err, d.stderr.trimmed())
	}
	d.pid = info.PID
	return d, nil
}

// stop unmounts as `pipefs umount` does, with SIGTERM, and checks that
// the daemon exited cleanly.
func (d *daemon) stop() error {
	select {
	case <-d.exited:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(15 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
			return fmt.Errorf("pipefs daemon on %s did not exit 15s after SIGTERM; log: %s", d.dir, d.stderr.trimmed())
		}
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("pipefs daemon on %s exited with %v; log: %s", d.dir, d.cmd.ProcessState, d.stderr.trimmed())
	}
	return nil
}

// mountInfo waits, through a client, for a mount to be ready, and learns
// its daemon's pid.
func (e *env) mountInfo(dir string) (fsopResult, error) {
	var r fsopResult
	s := (&spec{}).flag("op", "info").flag("mount", dir)
	err := e.run("mount info", "fsop", s, &r)
	return r, err
}

// fsop runs a namespace operation on the mount through a client, on
// pipe prefix, or on n numbered pipes if n > 1.
func (e *env) fsop(mount, op, prefix string, n int, ctl string) (fsopResult, error) {
	var r fsopResult
	s := (&spec{}).flag("op", op).flag("mount", mount).flag("prefix", prefix).flag("n", n).flag("numbered", n > 1)
	if ctl != "" {
		s.flag("ctl", ctl)
	}
	err := e.run(op+" "+prefix, "fsop", s, &r)
	if err != nil {
		return r, err
	}
	return r, nil
}

// rss reads the daemon's resident memory.
func rss(pid int) (float64, error) {
	if pid <= 0 {
		return 0, errors.New("daemon pid unknown")
	}
	b, err := residentBytes(pid)
	return float64(b), err
}
