package netlink

import (
	"fmt"
	"testing"
)

// The outbox keeps runs whole, numbers every message, and cuts a run
// only where the peer acknowledged part of it.
func TestOutboxRuns(t *testing.T) {
	o := newOutbox()
	o.push([]byte("solo"))               // 1, cost 4
	o.pushRun([]byte("a\nbb\nccc\n"), 3) // 2-4, cost 9
	o.push(nil)                          // 5, cost 1
	if o.len() != 5 || o.last() != 5 || o.lastEnd() != 14 || o.acked() != 0 {
		t.Fatalf("len %d last %d lastEnd %d acked %d; want 5, 5, 14, 0", o.len(), o.last(), o.lastEnd(), o.acked())
	}
	if r := o.runAt(2); string(r.b) != "a\nbb\nccc\n" || r.n != 3 || r.first != 2 || r.end != 13 {
		t.Fatalf("runAt(2) = %+v", r)
	}
	o.ackTo(2) // the run's first line
	if r := o.runAt(3); string(r.b) != "bb\nccc\n" || r.n != 2 || r.end != 13 {
		t.Fatalf("after ACK 2, runAt(3) = %+v", r)
	}
	if o.len() != 3 || o.acked() != 2 || o.lastEnd() != 14 {
		t.Fatalf("after ACK 2: len %d acked %d lastEnd %d; want 3, 2, 14", o.len(), o.acked(), o.lastEnd())
	}
	o.ackTo(1) // an older ACK changes nothing
	if o.len() != 3 {
		t.Fatalf("an older ACK dropped messages: %d left", o.len())
	}
	o.renumber()
	if o.last() != 3 || o.lastEnd() != 8 {
		t.Fatalf("after renumber: last %d lastEnd %d; want 3, 8", o.last(), o.lastEnd())
	}
	if got := fmt.Sprintf("%q", o.drain()); got != `["bb\n" "ccc\n" ""]` {
		t.Fatalf("drain = %s", got)
	}
	if o.len() != 0 || o.last() != 0 {
		t.Fatalf("after drain: len %d last %d", o.len(), o.last())
	}
}

// Acknowledging everything empties the outbox and lets numbering go on.
func TestOutboxAckAll(t *testing.T) {
	o := newOutbox()
	for i := range 3000 {
		o.pushRun([]byte("x\ny\n"), 2)
		if i%7 == 0 {
			o.ackTo(o.last() - 1) // half of the newest run
		}
	}
	if o.len() <= 0 {
		t.Fatal("nothing left")
	}
	o.ackTo(o.last())
	if o.len() != 0 || o.acked() != 6000 || o.lastEnd() != 12000 {
		t.Fatalf("len %d acked %d lastEnd %d; want 0, 6000, 12000", o.len(), o.acked(), o.lastEnd())
	}
	o.push([]byte("z"))
	if r := o.runAt(6001); string(r.b) != "z" || r.end != 12001 {
		t.Fatalf("runAt(6001) = %+v", r)
	}
}
