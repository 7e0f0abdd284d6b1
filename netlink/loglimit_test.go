package netlink

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestStrangerLogBounded(t *testing.T) {
	var buf bytes.Buffer
	l := newStrangerLog(slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for range strangerLogBurst + 30 {
		l.info("handshake failed")
	}
	if got := strings.Count(buf.String(), "handshake failed"); got != strangerLogBurst {
		t.Fatalf("%d lines logged within one second; want %d", got, strangerLogBurst)
	}
	now = now.Add(time.Second)
	l.info("handshake failed")
	if !strings.Contains(buf.String(), "count=30") {
		t.Fatalf("the next second does not report the 30 left out; log:\n%s", buf.String())
	}
	if got := strings.Count(buf.String(), "handshake failed"); got != strangerLogBurst+1 {
		t.Fatalf("%d lines logged; want %d", got, strangerLogBurst+1)
	}
}
