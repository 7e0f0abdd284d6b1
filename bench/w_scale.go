package bench

import (
	"fmt"
	"math"
	"path/filepath"
)

// W6: many pipes and parked readers beside a W1 stream. Every round
// makes two measurements, in alternating order, each on a fresh private
// daemon (unless --mount is given): W1 on an otherwise idle mount; and on
// a mount that first gets the pipes and the parked readers, with the
// daemon's resident memory taken before and after each step, and then
// W1 beside them. A fresh daemon makes the memory figures what the pipes
// and readers cost, not what earlier workloads left in its heap.
func runW6(e *env) error {
	o := e.opts
	fig := func(id, title, unit string, format func(float64) string, tg *target) *Figure {
		return e.rep.figure(id, "W6", title, unit, format, tg)
	}
	pipes, readers := thousands(o.Pipes), thousands(o.ParkedReaders)
	f := w6Figures{
		mk50:      fig("w6.mkdir.p50", "mkdir of "+pipes+" pipes p50", "µs", fmtMicros, nil),
		mk99:      fig("w6.mkdir.p99", "mkdir of "+pipes+" pipes p99", "µs", fmtMicros, nil),
		rss0:      fig("w6.rss.empty", "daemon RSS, no pipes", "MB", fmtMB, nil),
		rss1:      fig("w6.rss.pipes", "daemon RSS, "+pipes+" pipes", "MB", fmtMB, nil),
		rss2:      fig("w6.rss.parked", "daemon RSS, +"+readers+" parked readers", "MB", fmtMB, nil),
		perPipe:   fig("w6.per_pipe", "memory per idle pipe", "B", fmtFixed(0), below(2048, "<2048B")),
		perReader: fig("w6.per_reader", "memory per parked reader", "B", fmtFixed(0), below(4096, "<4096B")),
		idle:      fig("w6.w1.idle", "W1 on an idle mount", "msg/s", fmtSI, nil),
		beside:    fig("w6.w1.beside", "W1 beside them", "msg/s", fmtSI, nil),
		ratio:     fig("w6.w1.ratio", "W1 beside / idle", "", fmtFixed(3), atLeast(0.8, "≥0.8")),
	}
	for round := range o.Rounds {
		var idle, beside float64
		var err error
		if round%2 == 0 {
			idle, err = e.w6Idle(round)
			if err == nil {
				beside, err = e.w6Beside(round, &f)
			}
		} else {
			beside, err = e.w6Beside(round, &f)
			if err == nil {
				idle, err = e.w6Idle(round)
			}
		}
		if err != nil {
			return fmt.Errorf("round %d: %w", round+1, err)
		}
		f.idle.set(tPipefs, round, o.Rounds, idle)
		f.beside.set(tPipefs, round, o.Rounds, beside)
		f.ratio.set(tPipefs, round, o.Rounds, beside/idle)
	}
	return nil
}

type w6Figures struct {
	mk50, mk99, rss0, rss1, rss2, perPipe, perReader, idle, beside, ratio *Figure
}

func (e *env) w6Step(round int, what string) {
	e.progress("W6: round %d/%d: %s", round+1, e.opts.Rounds, what)
}

// w6Idle measures W1 on a mount with nothing else on it.
func (e *env) w6Idle(round int) (rate float64, err error) {
	if err := e.ctx.Err(); err != nil {
		return 0, err
	}
	e.w6Step(round, "W1 on an idle mount")
	mount, _, stop, err := e.freshMount(fmt.Sprintf("w6-idle-%d", round))
	if err != nil {
		return 0, err
	}
	defer func() {
		if serr := stop(); err == nil {
			err = serr
		}
	}()
	name := e.pipeName("w6idle")
	_, remove, err := e.makePipes(mount, name, 1, "")
	if err != nil {
		return 0, err
	}
	defer remove()
	ch := &channel{t: tPipefs, path: filepath.Join(mount, name)}
	r, err := e.measureStream(fmt.Sprintf("W6 round %d W1 idle", round+1), ch, 64, 1, 1)
	return r.rate, err
}

// w6Beside creates the pipes, parks the readers, measures memory on the
// way, and then measures W1 beside them.
func (e *env) w6Beside(round int, f *w6Figures) (rate float64, err error) {
	o := e.opts
	if err := e.ctx.Err(); err != nil {
		return 0, err
	}
	set := func(fig *Figure, v float64) { fig.set(tPipefs, round, o.Rounds, v) }
	e.w6Step(round, "mounting")
	mount, pid, stop, err := e.freshMount(fmt.Sprintf("w6-%d", round))
	if err != nil {
		return 0, err
	}
	defer func() {
		if serr := stop(); err == nil {
			err = serr
		}
	}()
	w1 := e.pipeName("w6w1")
	_, removeW1, err := e.makePipes(mount, w1, 1, "")
	if err != nil {
		return 0, err
	}
	defer removeW1()
	m0 := e.rss(pid)

	e.w6Step(round, "mkdir "+thousands(o.Pipes)+" pipes")
	many := e.pipeName("w6many")
	mk, removeMany, err := e.makePipes(mount, many, o.Pipes, "")
	if err != nil {
		return 0, err
	}
	removed := false
	defer func() {
		if !removed {
			removeMany()
		}
	}()
	set(f.mk50, mk.Latency.P50)
	set(f.mk99, mk.Latency.P99)
	m1 := e.rss(pid)

	e.w6Step(round, "parking "+thousands(o.ParkedReaders)+" readers")
	g := e.newGroup(2 * o.Duration)
	ps := (&spec{}).flag("mount", mount).flag("prefix", many).flag("n", o.ParkedReaders).flag("numbered", o.Pipes > 1)
	parker, err := g.start("W6 parker", "parker", ps)
	if err == nil {
		err = parker.ready()
	}
	if err == nil {
		_, err = e.fsop(mount, "waitparked", many, o.ParkedReaders, "")
	}
	if err != nil {
		g.abort()
		return 0, err
	}
	m2 := e.rss(pid)
	set(f.rss0, m0)
	set(f.rss1, m1)
	set(f.rss2, m2)
	set(f.perPipe, (m1-m0)/float64(o.Pipes))
	set(f.perReader, (m2-m1)/float64(o.ParkedReaders))

	e.w6Step(round, "W1 beside them")
	ch := &channel{t: tPipefs, path: filepath.Join(mount, w1)}
	res, err := e.measureStream(fmt.Sprintf("W6 round %d W1 beside", round+1), ch, 64, 1, 1)
	if err != nil {
		g.abort()
		return 0, err
	}
	// Destroying the pipes ends the parked reads with end of file, and
	// the parker exits.
	e.w6Step(round, "removing the pipes")
	removed = true
	if err := removeMany(); err != nil {
		g.abort()
		return 0, err
	}
	if err := g.wait(); err != nil {
		return 0, err
	}
	var pr parkerResult
	if err := parker.decode(&pr); err != nil {
		return 0, err
	}
	if pr.EOF != o.ParkedReaders || pr.Data != 0 {
		e.rep.failf("W6 round %d: of %d parked readers, %d saw end of file and %d got data", round+1, o.ParkedReaders, pr.EOF, pr.Data)
	}
	return res.rate, nil
}

// freshMount starts a private daemon for one measurement, or returns the
// given mount (whose memory then includes whatever it held before).
func (e *env) freshMount(name string) (mount string, pid int, stop func() error, err error) {
	if e.opts.Mount != "" {
		return e.mount, e.pid, func() error { return nil }, nil
	}
	d, err := e.startDaemon(name)
	if err != nil {
		return "", 0, nil, err
	}
	return d.dir, d.pid, d.stop, nil
}

// rss is the daemon's resident memory in bytes, or NaN (and a failure)
// where /proc does not show it.
func (e *env) rss(pid int) float64 {
	v, err := rss(pid)
	if err != nil {
		e.rep.failf("daemon resident memory: %v", err)
		return math.NaN()
	}
	return v
}
