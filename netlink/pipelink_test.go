package netlink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pipefs/pipe"
)

func TestPipeLinkBothWaysWithFlowControl(t *testing.T) {
	s := pipe.DefaultSettings()
	s.Capacity, s.MaxMessage = 64, 64 // small, so flow control is exercised
	a, _ := pipe.New("a", s)
	b, _ := pipe.New("b", s)
	pa, _ := a.Split()
	pb, _ := b.Split()
	l := StartPipeLink(pa, pb)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 2000
	send := func(p *pipe.Pipe, tag string) {
		w := p.NewWriter()
		for i := 0; i < n; i++ {
			if _, err := w.WriteBlocking(ctx, []byte(fmt.Sprintf("%s%d\n", tag, i))); err != nil {
				t.Errorf("write %s%d: %v", tag, i, err)
				return
			}
		}
	}
	go send(a, "a")
	go send(b, "b")
	recv := func(p *pipe.Pipe, tag string) {
		r := p.NewReader()
		for i := 0; i < n; i++ {
			m, err := r.ReadBlocking(ctx, 100)
			if want := fmt.Sprintf("%s%d\n", tag, i); err != nil || string(m) != want {
				t.Fatalf("read %q, %v; want %q", m, err, want)
			}
		}
	}
	recv(b, "a") // what a's writers write, b's readers read, in order
	recv(a, "b")
	fromA, fromB := l.Close()
	if ab, ba := l.Counts(); ab != n || ba != n {
		t.Fatalf("Counts = %d, %d; want %d each", ab, ba, n)
	}
	if err := pa.Join(fromA); err != nil {
		t.Fatal(err)
	}
	if err := pb.Join(fromB); err != nil {
		t.Fatal(err)
	}
}
