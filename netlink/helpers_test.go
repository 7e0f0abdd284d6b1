package netlink

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// failAfter bounds every wait in these tests. Nothing sleeps to let
// something happen; a wait that reaches it is a lost wake-up or a
// deadlock, and the failure says which wait it was.
const failAfter = 15 * time.Second

// checkLeaks fails the test if goroutines started during it are still
// running once its cleanups are done. Call it first, so that its cleanup
// runs last. Tests that use it must not run in parallel.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(failAfter)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines leaked: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf)
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// waitFor polls cond until it holds, failing the test after failAfter.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// memEndpoint is an Endpoint in memory: an outbox the test fills and an
// inbox with a byte capacity that the test empties. It records any
// delivery beyond the room it advertised.
type memEndpoint struct {
	mu       sync.Mutex
	outbox   [][]byte
	taken    int // messages handed out by Next
	inbox    [][]byte
	inBytes  int64
	capacity int64
	overflow string // the first delivery beyond room, if any
	closed   bool

	outWake  chan struct{} // the outbox gained a message
	inWake   chan struct{} // the inbox gained a message
	roomWake chan struct{} // RoomChanged
}

func newMemEndpoint(capacity int64) *memEndpoint {
	return &memEndpoint{
		capacity: capacity,
		outWake:  make(chan struct{}, 1), inWake: make(chan struct{}, 1), roomWake: make(chan struct{}, 1),
	}
}

func (e *memEndpoint) send(msgs ...[]byte) {
	e.mu.Lock()
	e.outbox = append(e.outbox, msgs...)
	e.mu.Unlock()
	signal(e.outWake)
}

func (e *memEndpoint) sendN(prefix string, n int) {
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = fmt.Appendf(nil, "%s %d\n", prefix, i)
	}
	e.send(msgs...)
}

func (e *memEndpoint) Next(ctx context.Context) ([]byte, error) {
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return nil, ErrClosed
		}
		if len(e.outbox) > 0 {
			m := e.outbox[0]
			e.outbox = e.outbox[1:]
			e.taken++
			more := len(e.outbox) > 0
			e.mu.Unlock()
			if more {
				signal(e.outWake)
			}
			return m, nil
		}
		e.mu.Unlock()
		select {
		case <-e.outWake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (e *memEndpoint) Deliver(msg []byte) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if !bytes.HasPrefix(msg, []byte("BYE")) && e.inBytes+int64(cost(msg)) > e.capacity && e.overflow == "" {
		e.overflow = fmt.Sprintf("delivered %d bytes with %d of %d used", cost(msg), e.inBytes, e.capacity)
	}
	e.inbox = append(e.inbox, msg)
	e.inBytes += int64(cost(msg))
	e.mu.Unlock()
	signal(e.inWake)
	return nil
}

func (e *memEndpoint) Room() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.capacity - e.inBytes
}

func (e *memEndpoint) RoomChanged() <-chan struct{} { return e.roomWake }

// Outbox says how many messages wait to be taken, as a pipe's Port does
// (the bye gate lets those go ahead of a BYE).
func (e *memEndpoint) Outbox() (int, int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for _, m := range e.outbox {
		n += int64(len(m))
	}
	return len(e.outbox), n
}

// recv takes the oldest message from the inbox, waiting for one.
func (e *memEndpoint) recv(t testing.TB) string {
	t.Helper()
	timer := time.NewTimer(failAfter)
	defer timer.Stop()
	for {
		e.mu.Lock()
		if len(e.inbox) > 0 {
			m := e.inbox[0]
			e.inbox = e.inbox[1:]
			e.inBytes -= int64(cost(m))
			e.mu.Unlock()
			signal(e.roomWake)
			return string(m)
		}
		e.mu.Unlock()
		select {
		case <-e.inWake:
		case <-timer.C:
			t.Fatalf("timed out waiting for a message")
		}
	}
}

// expectN receives n messages and checks they are prefix 0..n-1 in order.
func (e *memEndpoint) expectN(t testing.TB, prefix string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		want := fmt.Sprintf("%s %d\n", prefix, i)
		if got := e.recv(t); got != want {
			t.Fatalf("received %q, want %q", got, want)
		}
	}
}

func (e *memEndpoint) counts() (outbox, taken, inbox int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.outbox), e.taken, len(e.inbox)
}

func (e *memEndpoint) inboxStrings() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var s []string
	for _, m := range e.inbox {
		s = append(s, string(m))
	}
	return s
}

func (e *memEndpoint) checkNoOverflow(t testing.TB) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.overflow != "" {
		t.Errorf("endpoint overflowed its room: %s", e.overflow)
	}
}

// testConfig is a Config for tests: small timeouts where a test waits on
// them, logging to the test.
func testConfig(t testing.TB) Config {
	return Config{HandshakeTimeout: 5 * time.Second, Logger: testLogger(t)}
}

// runAsync runs f in a goroutine and returns its error on a channel; the
// test's cleanup waits for it.
func runAsync(t testing.TB, f func() error) <-chan error {
	ch := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ch <- f()
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		case <-time.After(failAfter):
			t.Errorf("a goroutine of the test is still running at its end")
		}
	})
	return ch
}

// wait returns the error from ch, failing after failAfter.
func wait(t testing.TB, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(failAfter):
		t.Fatalf("timed out waiting for %s", what)
		return nil
	}
}

func mustContain(t testing.TB, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one mentioning %q", err, want)
	}
}
