package pipe

import (
	"context"
	"errors"
	"testing"
	"time"
)

func mustSplit(t *testing.T, s Settings) (*Pipe, *Port) {
	t.Helper()
	p, err := New("l", s)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := p.Split()
	if err != nil {
		t.Fatalf("Split: %v", err)
	}
	return p, pt
}

func nextWithin(t *testing.T, pt *Port) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := pt.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return m
}

func TestPortSeparatesDirections(t *testing.T) {
	p, pt := mustSplit(t, DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	if _, err := w.Write([]byte("a\nb\n"), true, nil, nil); err != nil {
		t.Fatal(err)
	}
	// What local writers write goes to the link, not to local readers.
	if _, err := r.Read(nil, 100, false, true, nil, nil); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("local read after a linked write = %v; want ErrWouldBlock", err)
	}
	for _, want := range []string{"a\n", "b\n"} {
		if got := string(nextWithin(t, pt)); got != want {
			t.Fatalf("Next = %q; want %q", got, want)
		}
	}
	// What the peer sends goes to local readers.
	if err := pt.Deliver([]byte("from peer\n")); err != nil {
		t.Fatal(err)
	}
	parts, err := r.Read(nil, 100, false, true, nil, nil)
	if err != nil || len(parts) != 1 || string(parts[0]) != "from peer\n" {
		t.Fatalf("local read = %q, %v; want the delivered message", parts, err)
	}
	if _, err := p.Split(); !errors.Is(err, ErrSplit) {
		t.Fatalf("second Split = %v; want ErrSplit", err)
	}
}

func TestPortOutboxFlowControl(t *testing.T) {
	s := DefaultSettings()
	s.Capacity, s.MaxMessage = 8, 8
	p, pt := mustSplit(t, s)
	w := p.NewWriter()
	if _, err := w.Write([]byte("1234567\n"), true, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x\n"), true, nil, nil); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("write to a full outbox = %v; want ErrWouldBlock", err)
	}
	if n, b := pt.Outbox(); n != 1 || b != 8 {
		t.Fatalf("Outbox = %d, %d; want 1, 8", n, b)
	}
	nextWithin(t, pt)
	if _, err := w.Write([]byte("x\n"), true, nil, nil); err != nil {
		t.Fatalf("write after the link took a message = %v", err)
	}
}

func TestPortRoom(t *testing.T) {
	s := DefaultSettings()
	s.Capacity, s.MaxMessage = 100, 100
	p, pt := mustSplit(t, s)
	if got := pt.Room(); got != 100 {
		t.Fatalf("Room = %d; want 100", got)
	}
	pt.Deliver([]byte("0123456789"))
	if got := pt.Room(); got != 90 {
		t.Fatalf("Room after 10 bytes = %d; want 90", got)
	}
	select {
	case <-pt.RoomChanged():
		t.Fatal("RoomChanged signalled before any room was made")
	default:
	}
	if _, err := p.NewReader().Read(nil, 100, false, true, nil, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pt.RoomChanged():
	case <-time.After(10 * time.Second):
		t.Fatal("RoomChanged not signalled after a read made room")
	}
	if got := pt.Room(); got != 100 {
		t.Fatalf("Room after the read = %d; want 100", got)
	}
}

func TestPortJoinLosesNothing(t *testing.T) {
	s := DefaultSettings()
	s.Capacity, s.MaxMessage = 16, 16
	p, pt := mustSplit(t, s)
	w, r := p.NewWriter(), p.NewReader()
	pt.Deliver([]byte("received\n"))
	w.Write([]byte("queued\n"), true, nil, nil)
	taken := nextWithin(t, pt) // the link took it but the peer never confirmed
	w.Write([]byte("waiting\n"), true, nil, nil)
	// A blocked writer on the full outbox.
	done := make(chanNotifier, 1)
	var req WriteRequest
	if _, err := w.Write([]byte("blocked-writer\n"), false, &req, done); !errors.Is(err, ErrParked) {
		t.Fatalf("write to a full outbox = %v; want ErrParked", err)
	}
	if err := pt.Join([][]byte{taken}); err != nil {
		t.Fatalf("Join: %v", err)
	}
	want := []string{"received\n", "queued\n", "waiting\n"}
	for _, wnt := range want {
		parts, err := r.Read(nil, 100, false, true, nil, nil)
		if err != nil || string(parts[0]) != wnt {
			t.Fatalf("after Join read %q, %v; want %q", parts, err, wnt)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked writer was not let in after Join made room")
	}
	if req.Err != nil {
		t.Fatalf("blocked writer: %v", req.Err)
	}
	parts, err := r.Read(nil, 100, false, true, nil, nil)
	if err != nil || string(parts[0]) != "blocked-writer\n" {
		t.Fatalf("read %q, %v; want the blocked writer's line", parts, err)
	}
	if _, err := pt.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Join = %v; want ErrClosed", err)
	}
	if err := pt.Join(nil); !errors.Is(err, ErrNotSplit) {
		t.Fatalf("second Join = %v; want ErrNotSplit", err)
	}
	// Local again: writes reach local readers.
	w.Write([]byte("local\n"), true, nil, nil)
	if parts, err := r.Read(nil, 100, false, true, nil, nil); err != nil || string(parts[0]) != "local\n" {
		t.Fatalf("read after Join = %q, %v; want local", parts, err)
	}
}

func TestPortJoinEndsParkedNext(t *testing.T) {
	_, pt := mustSplit(t, DefaultSettings())
	errc := make(chan error, 1)
	go func() {
		_, err := pt.Next(context.Background())
		errc <- err
	}()
	// Join must end the Next whether it is parked yet or not.
	if err := pt.Join(nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Next = %v; want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next still blocked after Join")
	}
}

// A link forwards messages one by one even when the pipe reads in batches:
// joined, they would arrive on the other side as one message.
func TestPortTakesOneMessageWithBatchOn(t *testing.T) {
	s := DefaultSettings()
	s.Batch = true
	p, pt := mustSplit(t, s)
	if _, err := p.NewWriter().Write([]byte("one\ntwo\nthree\n"), true, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one\n", "two\n", "three\n"} {
		if got := string(nextWithin(t, pt)); got != want {
			t.Fatalf("Next = %q; want %q", got, want)
		}
	}
}
