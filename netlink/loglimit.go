package netlink

import (
	"log/slog"
	"sync"
	"time"
)

// strangerLogBurst is how many lines about failed or dropped connections
// a server or listening rendezvous logs per second; the rest are counted
// and reported in one line.
const strangerLogBurst = 20

// strangerLog logs what strangers do — connections dropped, handshakes
// failed — at a bounded rate: each such line is cheap for the peer to
// cause, so without a bound a flood of connections would flood the log.
type strangerLog struct {
	log *slog.Logger
	now func() time.Time

	mu         sync.Mutex
	start      time.Time // of the current second
	lines      int       // logged in it
	suppressed int       // not logged in it
}

func newStrangerLog(log *slog.Logger) *strangerLog { return &strangerLog{log: log, now: time.Now} }

// info logs msg unless the second's burst is used up. The first line of a
// later second says how many were left out before it.
func (l *strangerLog) info(msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	var left int
	if now.Sub(l.start) >= time.Second {
		left = l.suppressed
		l.start, l.lines, l.suppressed = now, 0, 0
	}
	if l.lines >= strangerLogBurst {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.lines++
	l.mu.Unlock()
	if left > 0 {
		l.log.Info("more failed or dropped connections were not logged", "count", left)
	}
	l.log.Info(msg, args...)
}
