package pipefs_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The cut link, end to end: two daemons linked with `link tcp`
// through a proxy that kills the connection at random points — after a
// random number of bytes or a random time, with a FIN or a reset — while
// 100,000 numbered messages flow each way at once. Every message must
// arrive exactly once and in order, and `resent` must show that the cuts
// fell while messages were in flight.
func TestLinkCutWhileFlowing(t *testing.T) {
	const (
		n     = 100_000
		batch = 1000 // lines per write(2)
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	var rngMu sync.Mutex
	var cutting atomic.Bool
	cutting.Store(true)
	cutAt := func() cutPoint {
		if !cutting.Load() {
			return cutPoint{}
		}
		rngMu.Lock()
		defer rngMu.Unlock()
		return cutPoint{
			bytes: 2<<10 + rng.Int64N(190<<10),
			after: time.Duration(30+rng.IntN(370)) * time.Millisecond,
			reset: rng.IntN(2) == 0,
		}
	}

	a, b := mountPipefs(t), mountPipefs(t)
	proxy, peers := linkThroughProxy(t, a, b, cutAt, "p")
	peer := peers["p"]
	// Batch reads: the test reads lines itself, many per read(2).
	a.sh(t, `echo "batch on" > "$M/p/ctl"`)
	b.sh(t, `echo "batch on" > "$M/`+peer+`/ctl"`)

	flows := []struct {
		name    string
		in, out string
	}{
		{"a->b", a.path("p/in"), b.path(peer + "/out")},
		{"b->a", b.path(peer + "/in"), a.path("p/out")},
	}
	errs := make(chan error, 2*len(flows))
	var received [2]atomic.Int64
	var wg sync.WaitGroup
	for i, f := range flows {
		wg.Go(func() { errs <- writeNumbered(f.in, f.name, n, batch) })
		wg.Go(func() { errs <- readNumbered(f.out, f.name, n, &received[i]) })
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatalf("after 90 s: %d and %d of %d messages arrived; %d connections, %d cuts; a: %v; b: %v",
			received[0].Load(), received[1].Load(), n, proxy.accepted.Load(), proxy.cuts.Load(),
			a.status(t, "p"), b.status(t, peer))
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}

	// Let the last acknowledgements through, then check the counters.
	cutting.Store(false)
	proxy.cutAll()
	a.waitStatus(t, "p", "outbox", "0")
	b.waitStatus(t, peer, "outbox", "0")
	sa, sb := a.status(t, "p"), b.status(t, peer)
	t.Logf("%d connections, %d cut by the proxy; a: sent %s received %s resent %s; b: sent %s received %s resent %s",
		proxy.accepted.Load(), proxy.cuts.Load(), sa["sent"], sa["received"], sa["resent"], sb["sent"], sb["received"], sb["resent"])
	for _, st := range []map[string]string{sa, sb} {
		if st["sent"] != strconv.Itoa(n) || st["received"] != strconv.Itoa(n) {
			t.Errorf("status of %s: sent %s, received %s; want %d each", st["name"], st["sent"], st["received"], n)
		}
	}
	if cuts := proxy.cuts.Load(); cuts < 5 {
		t.Errorf("the proxy cut only %d connections; the test did not test much", cuts)
	}
	ra, _ := strconv.Atoi(sa["resent"])
	rb, _ := strconv.Atoi(sb["resent"])
	if ra+rb == 0 {
		t.Errorf("resent is 0 on both sides: no cut fell while messages were in flight")
	}
}

// writeNumbered writes lines "NAME I" for I from 0 to n-1 to path, batch
// lines per write(2).
func writeNumbered(path, name string, n, batch int) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var buf []byte
	for i := 0; i < n; {
		buf = buf[:0]
		for j := 0; j < batch && i < n; j, i = j+1, i+1 {
			buf = append(buf, name...)
			buf = append(buf, ' ')
			buf = strconv.AppendInt(buf, int64(i), 10)
			buf = append(buf, '\n')
		}
		if _, err := f.Write(buf); err != nil {
			return fmt.Errorf("%s: writing message %d: %w", name, i, err)
		}
	}
	return f.Close()
}

// readNumbered reads n lines from path and checks that they are "NAME I"
// for I from 0 on: every message once, in order.
func readNumbered(path, name string, n int, count *atomic.Int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var want []byte
	for i := range n {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("%s: reading message %d: %w", name, i, err)
		}
		want = append(append(append(want[:0], name...), ' '), strconv.Itoa(i)...)
		want = append(want, '\n')
		if string(line) != string(want) {
			return fmt.Errorf("%s: message %d is %q, want %q", name, i, line, want)
		}
		count.Add(1)
	}
	return nil
}
