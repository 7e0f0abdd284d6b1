package bench

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// latencyResult summarises timed samples, in nanoseconds.
type latencyResult struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	P999    float64 `json:"p999"`
	Max     float64 `json:"max"`
}

// warmup samples are dropped: the first round trips fault in pages and
// start threads in every process involved.
const warmup = 20

func summarise(samples []int64) latencyResult {
	if len(samples) == 0 {
		return latencyResult{}
	}
	if len(samples) > 2*warmup {
		samples = samples[warmup:]
	}
	s := make([]float64, len(samples))
	for i, v := range samples {
		s[i] = float64(v)
	}
	sortFloats(s)
	return latencyResult{
		Samples: len(s),
		P50:     percentileSorted(s, 0.50),
		P99:     percentileSorted(s, 0.99),
		P999:    percentileSorted(s, 0.999),
		Max:     percentileSorted(s, 1),
	}
}

// runPing sends a message and waits for it to come back, for
// c.duration, and reports the round trips.
func runPing(c *clientConfig) (any, error) {
	out, err := c.openSend()
	if err != nil {
		return nil, err
	}
	in, err := c.openRecv()
	if err != nil {
		return nil, err
	}
	msg := newMessage(c.size)
	buf := make([]byte, c.size+1)
	samples := make([]int64, 0, 1<<16)
	deadline := now() + c.duration.Nanoseconds()
	var seq uint64
	// One round trip at least, however late this process ran.
	for t0 := now(); seq == 0 || t0 < deadline; t0 = now() {
		putHeader(msg, header{kind: kindData, seq: seq, stamp: t0})
		if err := c.writeMsg(out, msg); err != nil {
			return nil, fmt.Errorf("ping %d: %w", seq, err)
		}
		m, err := c.readMsg(in, buf)
		if err != nil {
			return nil, fmt.Errorf("pong %d: %w", seq, err)
		}
		samples = append(samples, now()-t0)
		if h, err := parseHeader(m); err != nil || h.seq != seq {
			return nil, fmt.Errorf("pong %d came back as %q (%v)", seq, m, err)
		}
		seq++
	}
	putHeader(msg, header{kind: kindEnd, seq: seq})
	if err := c.writeMsg(out, msg); err != nil {
		return nil, fmt.Errorf("end marker: %w", err)
	}
	return summarise(samples), nil
}

// runPong sends every message it receives back, until the end marker.
// With --poll it waits for each message in poll(2), as an event loop
// does, and reports the wake-ups: the time from the ping's stamp, taken
// just before its write(2), to poll(2) returning.
func runPong(c *clientConfig) (any, error) {
	in, err := c.openRecv()
	if err != nil {
		return nil, err
	}
	out, err := c.openSend()
	if err != nil {
		return nil, err
	}
	c.signalReady()
	buf := make([]byte, c.size+1)
	var samples []int64
	for n := 0; ; n++ {
		var woke int64
		if c.poll {
			if err := c.sys.pollIn(in); err != nil {
				return nil, err
			}
			woke = now()
		}
		m, err := c.readMsg(in, buf)
		if err != nil {
			return nil, fmt.Errorf("after %d messages: %w", n, err)
		}
		if m[0] == kindEnd {
			return summarise(samples), nil
		}
		if c.poll {
			h, err := parseHeader(m)
			if err != nil {
				return nil, err
			}
			samples = append(samples, woke-h.stamp)
		}
		if err := c.writeMsg(out, m); err != nil {
			return nil, fmt.Errorf("echo %d: %w", n, err)
		}
	}
}

// runPollWriter measures poll(2) wake-ups of an idle reader together
// with runPollReader: it waits c.gap, so that the reader is asleep in
// poll(2) again and the machine has gone idle, stamps
// a message with the time and writes it, and waits for the reader's
// acknowledgement on an ordinary pipe before the next one.
func runPollWriter(c *clientConfig) (any, error) {
	out, err := c.openSend()
	if err != nil {
		return nil, err
	}
	if c.ackFD < 0 {
		return nil, fmt.Errorf("no --ack-fd")
	}
	if err := unix.SetNonblock(c.ackFD, false); err != nil {
		return nil, err
	}
	msg := newMessage(c.size)
	ack := make([]byte, 1)
	deadline := now() + c.duration.Nanoseconds()
	var seq uint64
	for seq == 0 || now() < deadline {
		time.Sleep(c.gap)
		putHeader(msg, header{kind: kindData, seq: seq, stamp: now()})
		if err := c.writeMsg(out, msg); err != nil {
			return nil, fmt.Errorf("message %d: %w", seq, err)
		}
		if _, err := c.sys.readFull(c.ackFD, ack); err != nil {
			return nil, fmt.Errorf("acknowledgement %d: %w", seq, err)
		}
		seq++
	}
	putHeader(msg, header{kind: kindEnd, seq: seq})
	if err := c.writeMsg(out, msg); err != nil {
		return nil, fmt.Errorf("end marker: %w", err)
	}
	return writerResult{Sent: int64(seq)}, nil
}

// runPollReader sleeps in poll(2) until its file is readable, notes the
// time, reads the message and reports the wake-up: the time from the
// writer's stamp, taken just before its write(2), to poll(2) returning.
func runPollReader(c *clientConfig) (any, error) {
	in, err := c.openRecv()
	if err != nil {
		return nil, err
	}
	if c.ackFD < 0 {
		return nil, fmt.Errorf("no --ack-fd")
	}
	if err := unix.SetNonblock(c.ackFD, false); err != nil {
		return nil, err
	}
	c.signalReady()
	buf := make([]byte, c.size+1)
	samples := make([]int64, 0, 1<<14)
	for {
		if err := c.sys.pollIn(in); err != nil {
			return nil, err
		}
		woke := now()
		m, err := c.readMsg(in, buf)
		if err != nil {
			return nil, fmt.Errorf("after %d messages: %w", len(samples), err)
		}
		h, err := parseHeader(m)
		if err != nil {
			return nil, err
		}
		if h.kind == kindEnd {
			return summarise(samples), nil
		}
		samples = append(samples, woke-h.stamp)
		if err := c.sys.writeAll(c.ackFD, []byte{'a'}); err != nil {
			return nil, fmt.Errorf("acknowledge: %w", err)
		}
	}
}
