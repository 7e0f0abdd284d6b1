package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// pollGap is how long the W4 poll writer waits before each message, so
// that the reader has gone back to sleep in poll(2) (for pipefs, its
// FUSE_POLL has been answered "not ready" and armed a notification).
const pollGap = time.Millisecond

// W4 measures latency three ways, each over every transport: the round
// trip of a ping-pong whose two processes block in read(2); the same
// ping-pong with the answering process waiting in poll(2), as an event
// loop does, which gives the time from a write to the poller's wake-up
// under load; and that wake-up when the poller has slept for a
// millisecond and the machine has gone idle.
func runW4(e *env) error {
	fig := func(id, title string, tg *target) *Figure {
		return e.rep.figure(id, "W4", title, "µs", fmtMicros, tg)
	}
	rtt := []*Figure{
		fig("w4.rtt.p50", "round trip p50", atMost(100e3, "≤100µs")),
		fig("w4.rtt.p99", "round trip p99", nil),
		fig("w4.rtt.p999", "round trip p99.9", nil),
	}
	wake := []*Figure{
		fig("w4.wake.p50", "poll wake-up in ping-pong p50", atMost(60e3, "≤60µs")),
		fig("w4.wake.p99", "poll wake-up in ping-pong p99", nil),
		fig("w4.wake.p999", "poll wake-up in ping-pong p99.9", nil),
	}
	idle := []*Figure{
		fig("w4.idle.p50", "poll wake-up after 1 ms idle p50", atMost(60e3, "≤60µs")),
		fig("w4.idle.p99", "poll wake-up after 1 ms idle p99", nil),
	}
	set := func(figs []*Figure, t transport, round int, r latencyResult) {
		for i, v := range []float64{r.P50, r.P99, r.P999}[:len(figs)] {
			figs[i].set(t, round, e.opts.Rounds, v)
		}
	}

	mount, err := e.sharedMount()
	if err != nil {
		return err
	}
	there, back, polled := e.pipeName("w4a"), e.pipeName("w4b"), e.pipeName("w4p")
	for _, name := range []string{there, back, polled} {
		_, remove, err := e.makePipes(mount, name, 1, "")
		if err != nil {
			return err
		}
		defer remove()
	}
	for _, poll := range []bool{false, true} {
		what := "W4 round trip"
		if poll {
			what = "W4 poll in ping-pong"
		}
		err = e.alternate(what, allTransports, func(t transport, round int) error {
			a, err := e.newChannel(t, filepath.Join(mount, there))
			if err != nil {
				return err
			}
			defer a.close()
			b, err := e.newChannel(t, filepath.Join(mount, back))
			if err != nil {
				return err
			}
			defer b.close()
			ping, pong, err := e.measurePingPong(fmt.Sprintf("%s round %d %s", what, round+1, t), a, b, poll)
			if err != nil {
				return err
			}
			if poll {
				set(wake, t, round, pong)
			} else {
				set(rtt, t, round, ping)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return e.alternate("W4 poll after idle", allTransports, func(t transport, round int) error {
		ch, err := e.newChannel(t, filepath.Join(mount, polled))
		if err != nil {
			return err
		}
		defer ch.close()
		r, err := e.measurePoll(fmt.Sprintf("W4 poll after idle round %d %s", round+1, t), ch)
		if err != nil {
			return err
		}
		set(idle, t, round, r)
		return nil
	})
}

// measurePingPong bounces a 64 B message between two processes, there
// over a and back over b, for the run's duration, and returns the round
// trips the ping saw and, with poll, the wake-ups of the pong.
func (e *env) measurePingPong(label string, a, b *channel, poll bool) (ping, pong latencyResult, err error) {
	g := e.newGroup(e.opts.Duration)
	ps := &spec{}
	a.addRecv(ps)
	b.addSend(ps)
	ps.flag("size", 64).flag("poll", poll)
	pongProc, err := g.start(label+" pong", "pong", ps)
	if err == nil {
		err = pongProc.ready()
	}
	if err != nil {
		g.abort()
		return ping, pong, err
	}
	ss := &spec{}
	a.addSend(ss)
	b.addRecv(ss)
	ss.flag("size", 64).flag("duration", e.opts.Duration)
	pingProc, err := g.start(label+" ping", "ping", ss)
	if err != nil {
		g.abort()
		return ping, pong, err
	}
	if err := g.wait(); err != nil {
		return ping, pong, err
	}
	if err := errors.Join(pingProc.decode(&ping), pongProc.decode(&pong)); err != nil {
		return ping, pong, err
	}
	if ping.Samples == 0 || (poll && pong.Samples == 0) {
		return ping, pong, errors.New("no round trip completed")
	}
	return ping, pong, nil
}

// measurePoll measures, for the run's duration, the time from a write to
// the wake-up of a reader sleeping in poll(2). The reader acknowledges
// each message over an ordinary pipe, outside the measured path.
func (e *env) measurePoll(label string, ch *channel) (latencyResult, error) {
	var r latencyResult
	ackR, ackW, err := os.Pipe()
	if err != nil {
		return r, err
	}
	defer ackR.Close()
	defer ackW.Close()
	g := e.newGroup(e.opts.Duration)
	rs := &spec{}
	ch.addRecv(rs)
	rs.file("ack-fd", ackW).flag("size", 64)
	reader, err := g.start(label+" reader", "pollreader", rs)
	if err == nil {
		err = reader.ready()
	}
	if err != nil {
		g.abort()
		return r, err
	}
	ws := &spec{}
	ch.addSend(ws)
	ws.file("ack-fd", ackR).flag("size", 64).flag("duration", e.opts.Duration).flag("gap", pollGap)
	if _, err := g.start(label+" writer", "pollwriter", ws); err != nil {
		g.abort()
		return r, err
	}
	// The clients hold their own copies; the reader must see the
	// writer's end of the acknowledgement pipe close if it dies.
	ackR.Close()
	ackW.Close()
	if err := g.wait(); err != nil {
		return r, err
	}
	err = reader.decode(&r)
	if err == nil && r.Samples == 0 {
		err = errors.New("no wake-up measured")
	}
	return r, err
}
