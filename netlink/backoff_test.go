package netlink

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := backoff{min: 10 * time.Millisecond, max: 80 * time.Millisecond}
	for i, cap := range []time.Duration{10, 20, 40, 80, 80, 80} {
		cap *= time.Millisecond
		d := b.next()
		if d < cap/2 || d > cap {
			t.Fatalf("attempt %d waits %v, want within [%v, %v]", i, d, cap/2, cap)
		}
	}
	b.reset()
	if d := b.next(); d > 10*time.Millisecond {
		t.Fatalf("after reset waits %v, want at most the minimum", d)
	}
}
