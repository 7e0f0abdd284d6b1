package netlink

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"pipefs/pipe"
)

func TestFIFOLink(t *testing.T) {
	p, err := pipe.New("f", pipe.DefaultSettings())
	if err != nil {
		t.Fatal(err)
	}
	port, err := p.Split()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "fifos")
	l, err := StartFIFO(dir, port, pipe.DefaultMaxMessage, nil)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := p.NewReader()
	readMsg := func() string {
		t.Helper()
		m, err := r.ReadBlocking(ctx, 1<<20)
		if err != nil {
			t.Fatalf("read from the pipe: %v", err)
		}
		return string(m)
	}
	// Outside writers may come and go: each open, write, close.
	for _, text := range []string{"one\ntwo\n", "three\n"} {
		f, err := os.OpenFile(filepath.Join(dir, "in"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(text)
		f.Close()
	}
	for _, want := range []string{"one\n", "two\n", "three\n"} {
		if got := readMsg(); got != want {
			t.Fatalf("pipe got %q; want %q", got, want)
		}
	}

	// The pipe's messages come out of dir/out.
	w := p.NewWriter()
	if _, err := w.WriteBlocking(ctx, []byte("to fifo\nagain\n")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(f)
	for _, want := range []string{"to fifo\n", "again\n"} {
		got, err := br.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("dir/out gave %q, %v; want %q", got, err, want)
		}
	}
	if err := l.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
	// The counters are bumped after each write or delivery returns, so
	// they are only final once the link has stopped.
	back := l.Close()
	port.Join(back)
	if len(back) != 0 {
		t.Fatalf("Close gave back %q; want nothing (everything was read)", back)
	}
	if sent, received := l.Counts(); sent != 2 || received != 3 {
		t.Fatalf("Counts = %d sent, %d received; want 2, 3", sent, received)
	}
}

func TestFIFOLinkRefusesNonFIFO(t *testing.T) {
	p, _ := pipe.New("f", pipe.DefaultSettings())
	port, _ := p.Split()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in"), nil, 0o644)
	if _, err := StartFIFO(dir, port, 1024, nil); err == nil {
		t.Fatal("StartFIFO over a regular file succeeded; want an error")
	}
}
