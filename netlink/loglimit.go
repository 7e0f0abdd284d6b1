package netlink

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// strangerLogBurst is how many lines about failed or dropped connections
// a server or listening rendezvous logs per second; the rest are counted
// and reported in one line.
const strangerLogBurst = 20

// tamperLogEvery is how often a session logs frames that failed their
// tags: a peer on the path can cause one per connection, as often as the
// link reconnects.
const tamperLogEvery = 10 * time.Second

// strangerLog logs what strangers do — connections dropped, handshakes
// failed, frames tampered with — at a bounded rate: each such line is
// cheap for the peer to cause, so without a bound a flood of connections
// would flood the log.
type strangerLog struct {
	log    *slog.Logger
	level  slog.Level
	burst  int // lines per period
	period time.Duration
	more   string // the line that says how many were left out
	now    func() time.Time

	mu         sync.Mutex
	start      time.Time // of the current period
	lines      int       // logged in it
	suppressed int       // not logged in it
}

func newStrangerLog(log *slog.Logger) *strangerLog {
	return &strangerLog{log: log, level: slog.LevelInfo, burst: strangerLogBurst, period: time.Second, now: time.Now,
		more: "more failed or dropped connections were not logged"}
}

// newTamperLog logs warnings, one per tamperLogEvery.
func newTamperLog(log *slog.Logger) *strangerLog {
	return &strangerLog{log: log, level: slog.LevelWarn, burst: 1, period: tamperLogEvery, now: time.Now,
		more: "more connections closed for a frame that failed authentication were not logged"}
}

// info logs msg unless the period's burst is used up. The first line of a
// later period says how many were left out before it.
func (l *strangerLog) info(msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	var left int
	if now.Sub(l.start) >= l.period {
		left = l.suppressed
		l.start, l.lines, l.suppressed = now, 0, 0
	}
	if l.lines >= l.burst {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.lines++
	l.mu.Unlock()
	if left > 0 {
		l.log.Log(context.Background(), l.level, l.more, "count", left)
	}
	l.log.Log(context.Background(), l.level, msg, args...)
}
