package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// env is the state of one run.
type env struct {
	ctx  context.Context
	opts Options
	rep  *Report
	tmp  string // FIFOs and private mount points
	seq  int    // numbers FIFOs and pipes

	// The mount that W1–W5 use: the one given, or a private one
	// started when first needed.
	mount   string
	pid     int
	private *daemon
}

// Run runs the selected workloads and returns their report. An error
// means the run could not be made at all; checks that failed during the
// run (a lost message, a measurement that broke) are in Report.Failures.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.Only = append([]string(nil), opts.Only...)
	if err := opts.check(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "pipefs-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{ctx: ctx, opts: opts, tmp: tmp, rep: &Report{
		Version:  opts.Version,
		Kernel:   kernelRelease(),
		CPUs:     runtime.NumCPU(),
		LoadAvg:  loadAverage(),
		Started:  time.Now().UTC(),
		Duration: opts.Duration,
		Rounds:   opts.Rounds,
		Mount:    opts.Mount,
		Private:  opts.Mount == "",
		Figures:  []*Figure{},
		Failures: []string{},
	}}
	defer e.cleanup()
	if opts.Mount != "" {
		abs, err := filepath.Abs(opts.Mount)
		if err != nil {
			return nil, err
		}
		info, err := e.mountInfo(abs)
		if err != nil {
			return nil, fmt.Errorf("--mount %s: %w", opts.Mount, err)
		}
		e.mount, e.pid, e.rep.Mount = abs, info.PID, abs
	} else {
		e.rep.Mount = filepath.Join(tmp, "mnt")
	}
	for _, w := range workloads {
		if !opts.selected(w.name) {
			continue
		}
		e.progress("%s: %s", w.name, w.title)
		if err := w.run(e); err != nil {
			if ctx.Err() != nil {
				return e.rep, ctx.Err()
			}
			e.rep.failf("%s: %v", w.name, err)
		}
	}
	e.rep.finish()
	return e.rep, nil
}

// sharedMount returns the mount W1–W5 run on, mounting the private one
// the first time.
func (e *env) sharedMount() (string, error) {
	if e.mount != "" {
		return e.mount, nil
	}
	d, err := e.startDaemon("mnt")
	if err != nil {
		return "", err
	}
	e.private, e.mount, e.pid = d, d.dir, d.pid
	return e.mount, nil
}

// cleanup unmounts the private mount and removes the temporary
// directory. Only empty directories and FIFOs are removed, one by one:
// never recursively, in case a mount point is still attached.
func (e *env) cleanup() {
	if e.private != nil {
		if err := e.private.stop(); err != nil {
			e.rep.failf("%v", err)
		}
	}
	entries, _ := os.ReadDir(e.tmp)
	for _, de := range entries {
		os.Remove(filepath.Join(e.tmp, de.Name()))
	}
	os.Remove(e.tmp)
}

func (e *env) progress(format string, args ...any) {
	if e.opts.Progress != nil {
		e.opts.Progress(fmt.Sprintf(format, args...))
	}
}

// pipeName returns a pipe name that no other run on the same mount uses.
func (e *env) pipeName(what string) string {
	e.seq++
	return fmt.Sprintf("bench%d-%s-%d", os.Getpid(), what, e.seq)
}

// makePipes creates pipes (n numbered ones when n > 1) with ctl commands
// applied, and returns a function that removes them.
func (e *env) makePipes(mount, name string, n int, ctl string) (fsopResult, func() error, error) {
	r, err := e.fsop(mount, "mkdir", name, n, ctl)
	remove := func() error {
		// Also after an interrupt: a mount given with --mount keeps
		// no pipes of the benchmark.
		ce := *e
		ce.ctx = context.WithoutCancel(e.ctx)
		_, err := ce.fsop(mount, "rmdir", name, n, "")
		return err
	}
	if err != nil {
		remove()
		return r, nil, err
	}
	return r, remove, nil
}

// workload is one of W1–W7.
type workload struct {
	name  string
	title string
	run   func(e *env) error
}

// alternate runs measure for every round and transport: the transports
// take turns within a round, starting one later each round, so that a
// drift of the machine hits all of them alike.
func (e *env) alternate(w string, ts []transport, measure func(t transport, round int) error) error {
	for r := range e.opts.Rounds {
		for i := range ts {
			if err := e.ctx.Err(); err != nil {
				return err
			}
			t := ts[(i+r)%len(ts)]
			e.progress("%s: round %d/%d: %s", w, r+1, e.opts.Rounds, t)
			if err := measure(t, r); err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, t, err)
			}
		}
	}
	return nil
}

// seconds converts a span of monotonic nanoseconds.
func seconds(from, to int64) (float64, error) {
	if to <= from {
		return 0, errors.New("no time passed (clock readings out of order)")
	}
	return float64(to-from) / 1e9, nil
}
