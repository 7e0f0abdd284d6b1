package bench

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"path/filepath"
)

// W1, W2, W3 and W5 stream messages from writers to readers for the
// run's duration and count what arrived.

func runW1(e *env) error {
	rate := e.rep.figure("w1.rate", "W1", "64 B messages", "msg/s", fmtSI, ratioAtLeast(0.03))
	return e.streamWorkload("W1", "w1", 64, 1, 1, "", func(t transport, round int, r streamResult) {
		rate.set(t, round, e.opts.Rounds, r.rate)
	})
}

func runW2(e *env) error {
	for _, size := range []struct {
		bytes int
		name  string
		tg    *target
	}{{4 << 10, "4 KiB", nil}, {64 << 10, "64 KiB", ratioAtLeast(0.5)}} {
		rate := e.rep.figure(fmt.Sprintf("w2.%d.rate", size.bytes), "W2", size.name+" messages", "msg/s", fmtSI, nil)
		mbs := e.rep.figure(fmt.Sprintf("w2.%d.mbs", size.bytes), "W2", size.name+" messages", "MB/s", fmtSI, size.tg)
		err := e.streamWorkload("W2 "+size.name, "w2", size.bytes, 1, 1, "mode packets", func(t transport, round int, r streamResult) {
			rate.set(t, round, e.opts.Rounds, r.rate)
			mbs.set(t, round, e.opts.Rounds, r.byteRate/1e6)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func runW5(e *env) error {
	rate := e.rep.figure("w5.rate", "W5", "16 writers, 16 readers", "msg/s", fmtSI, atLeastFigure("w1.rate", "≥W1"))
	lost := e.rep.figure("w5.lost", "W5", "lost", "msgs", fmtSI, zero())
	dups := e.rep.figure("w5.dup", "W5", "duplicated", "msgs", fmtSI, zero())
	return e.streamWorkload("W5", "w5", 64, 16, 16, "", func(t transport, round int, r streamResult) {
		rate.set(t, round, e.opts.Rounds, r.rate)
		lost.set(t, round, e.opts.Rounds, float64(r.lost))
		dups.set(t, round, e.opts.Rounds, float64(r.dup))
	})
}

func runW3(e *env) error {
	rate := e.rep.figure("w3.rate", "W3", "128 KiB writes of 64 B lines", "msg/s", fmtSI, ratioAtLeast(0.5))
	mbs := e.rep.figure("w3.mbs", "W3", "128 KiB writes of 64 B lines", "MB/s", fmtSI, nil)
	mount, err := e.sharedMount()
	if err != nil {
		return err
	}
	name := e.pipeName("w3")
	// Batch reads need lines mode; capacity stays the default 8 MiB.
	_, remove, err := e.makePipes(mount, name, 1, "batch on")
	if err != nil {
		return err
	}
	defer remove()
	return e.alternate("W3", []transport{tPipefs, tFIFO}, func(t transport, round int) error {
		ch, err := e.newChannel(t, filepath.Join(mount, name))
		if err != nil {
			return err
		}
		defer ch.close()
		r, err := e.measureLines(fmt.Sprintf("W3 round %d %s", round+1, t), ch)
		if err != nil {
			return err
		}
		rate.set(t, round, e.opts.Rounds, r.rate)
		mbs.set(t, round, e.opts.Rounds, r.byteRate/1e6)
		return nil
	})
}

// measureLines runs W3's measurement on ch: a line reader reading
// 128 KiB at a time (a pipefs pipe must have batch on), and a line writer
// writing 2,048 lines of 64 B with each write(2) for the run's duration.
// It checks that every line arrived and that every pipefs read ended at
// the end of a line.
func (e *env) measureLines(label string, ch *channel) (streamResult, error) {
	var res streamResult
	g := e.newGroup(e.opts.Duration)
	rs := &spec{}
	ch.addRecv(rs)
	rs.flag("size", 64).flag("buf", 128<<10)
	rp, err := g.start(label+" reader", "linereader", rs)
	if err == nil {
		err = rp.ready()
	}
	if err != nil {
		g.abort()
		return res, err
	}
	ws := &spec{}
	ch.addSend(ws)
	ws.flag("size", 64).flag("lines-per-write", 2048).flag("duration", e.opts.Duration)
	wp, err := g.start(label+" writer", "linewriter", ws)
	if err != nil {
		g.abort()
		return res, err
	}
	if err := g.wait(); err != nil {
		return res, err
	}
	var w writerResult
	var r readerResult
	if err := errors.Join(wp.decode(&w), rp.decode(&r)); err != nil {
		return res, err
	}
	if r.Count != w.Sent {
		e.rep.failf("%s: %d lines written, %d read", label, w.Sent, r.Count)
	}
	if r.Torn != 0 {
		e.rep.failf("%s: %d batch reads did not end at the end of a line", label, r.Torn)
	}
	secs, err := seconds(w.Start, r.Last)
	if err != nil {
		return res, err
	}
	res.rate = float64(r.Count) / secs
	res.byteRate = float64(r.Bytes) / secs
	return res, nil
}

// streamResult is one measurement of a message stream.
type streamResult struct {
	rate     float64 // messages per second
	byteRate float64
	lost     int64
	dup      int64
}

// streamWorkload runs a stream of size-byte messages from writers to
// readers over every transport, on a pipefs pipe made with ctl.
func (e *env) streamWorkload(label, what string, size, writers, readers int, ctl string, record func(transport, int, streamResult)) error {
	mount, err := e.sharedMount()
	if err != nil {
		return err
	}
	name := e.pipeName(what)
	_, remove, err := e.makePipes(mount, name, 1, ctl)
	if err != nil {
		return err
	}
	defer remove()
	return e.alternate(label, allTransports, func(t transport, round int) error {
		ch, err := e.newChannel(t, filepath.Join(mount, name))
		if err != nil {
			return err
		}
		defer ch.close()
		r, err := e.measureStream(fmt.Sprintf("%s round %d %s", label, round+1, t), ch, size, writers, readers)
		if err != nil {
			return err
		}
		record(t, round, r)
		return nil
	})
}

// measureStream runs readers, waits until they have opened their side,
// then runs writers for the run's duration; every writer then sends end
// markers, one per reader in all. The rate is the messages received
// divided by the time from the first writer's start to the last reader's
// end marker. Every message is checked to arrive exactly once, and, with
// one writer and one reader, in order.
func (e *env) measureStream(label string, ch *channel, size, writers, readers int) (streamResult, error) {
	var res streamResult
	single := writers == 1 && readers == 1
	g := e.newGroup(e.opts.Duration)
	var rps, wps []*proc
	for i := range readers {
		s := &spec{}
		ch.addRecv(s)
		s.flag("size", size).flag("markers", 1)
		// One writer and one reader: in order and as many as were
		// sent proves exactly once, without the cost of recording ids.
		if single {
			s.flag("order", true)
		} else {
			s.flag("ids", true)
		}
		p, err := g.start(fmt.Sprintf("%s reader %d", label, i), "reader", s)
		if err != nil {
			g.abort()
			return res, err
		}
		rps = append(rps, p)
	}
	for _, p := range rps {
		if err := p.ready(); err != nil {
			g.abort()
			return res, err
		}
	}
	for i := range writers {
		markers := readers / writers
		if i < readers%writers {
			markers++
		}
		s := &spec{}
		ch.addSend(s)
		s.flag("size", size).flag("duration", e.opts.Duration).flag("id", i).flag("markers", markers)
		p, err := g.start(fmt.Sprintf("%s writer %d", label, i), "writer", s)
		if err != nil {
			g.abort()
			return res, err
		}
		wps = append(wps, p)
	}
	if err := g.wait(); err != nil {
		return res, err
	}
	ws := make([]writerResult, len(wps))
	rs := make([]readerResult, len(rps))
	var errs []error
	for i, p := range wps {
		errs = append(errs, p.decode(&ws[i]))
	}
	for i, p := range rps {
		errs = append(errs, p.decode(&rs[i]))
	}
	if err := errors.Join(errs...); err != nil {
		return res, err
	}

	var sent, count, bytes, disorder int64
	start, end := int64(math.MaxInt64), int64(0)
	for _, w := range ws {
		sent += w.Sent
		start = min(start, w.Start)
	}
	for _, r := range rs {
		count += r.Count
		bytes += r.Bytes
		disorder += r.Disorder
		end = max(end, r.Last)
	}
	if single {
		res.lost, res.dup = max(sent-count, 0), max(count-sent, 0)
	} else {
		res.lost, res.dup = exactlyOnce(ws, rs)
	}
	if res.lost != 0 || res.dup != 0 || count != sent {
		e.rep.failf("%s: %d messages sent, %d received: %d lost, %d duplicated", label, sent, count, res.lost, res.dup)
	}
	if disorder != 0 {
		e.rep.failf("%s: %d messages out of order", label, disorder)
	}
	secs, err := seconds(start, end)
	if err != nil {
		return res, err
	}
	res.rate = float64(count) / secs
	res.byteRate = float64(bytes) / secs
	return res, nil
}

// exactlyOnce merges the readers' records of the ids they received and
// counts the messages no reader got and the ones received more than once
// (by one reader or several). An id no writer sent counts as duplicated.
func exactlyOnce(ws []writerResult, rs []readerResult) (lost, dup int64) {
	union := map[int][]byte{}
	for _, r := range rs {
		dup += r.Dups
		for id, bm := range r.Seen {
			u := union[id]
			if len(u) < len(bm) {
				u = append(u, make([]byte, len(bm)-len(u))...)
			}
			for i, b := range bm {
				dup += int64(bits.OnesCount8(u[i] & b))
				u[i] |= b
			}
			union[id] = u
		}
	}
	for _, w := range ws {
		u := union[w.ID]
		delete(union, w.ID)
		var got, extra int64
		for i, b := range u {
			for bit := range 8 {
				if b&(1<<bit) == 0 {
					continue
				}
				if int64(i*8+bit) < w.Sent {
					got++
				} else {
					extra++
				}
			}
		}
		lost += w.Sent - got
		dup += extra
	}
	for _, u := range union {
		for _, b := range u {
			dup += int64(bits.OnesCount8(b))
		}
	}
	return lost, dup
}
