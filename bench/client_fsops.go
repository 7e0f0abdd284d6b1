package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fsopResult is what an fsop client reports.
type fsopResult struct {
	PID     int           `json:"pid,omitempty"`     // info: the daemon's
	Latency latencyResult `json:"latency,omitzero"`  // mkdir: per pipe
	Total   int64         `json:"total_ns,omitzero"` // mkdir: all of them
	Pending int64         `json:"pending,omitempty"` // pending
}

// pipeNames are the pipes an fsop or parker works on: c.prefix alone,
// or c.n names made of c.prefix and a number.
func (c *clientConfig) pipeNames() []string {
	if !c.numbered {
		return []string{c.prefix}
	}
	names := make([]string, c.n)
	for i := range names {
		names[i] = fmt.Sprintf("%s%05d", c.prefix, i)
	}
	return names
}

// runFSOp does the namespace and status work of the driver on the mount,
// so that the driver itself never touches the mount.
func runFSOp(c *clientConfig) (any, error) {
	if c.mount == "" {
		return nil, errors.New("no --mount")
	}
	path := func(name, file string) string { return filepath.Join(c.mount, name, file) }
	switch c.op {
	case "info":
		return mountInfo(c.mount)
	case "mkdir":
		samples := make([]int64, 0, c.n)
		start := now()
		for _, name := range c.pipeNames() {
			t0 := now()
			if err := retryEINTR(func() error { return unix.Mkdir(path(name, ""), 0o755) }); err != nil {
				return nil, fmt.Errorf("mkdir %s: %w", name, err)
			}
			samples = append(samples, now()-t0)
			if c.ctl != "" {
				if err := writeSmallFile(path(name, "ctl"), []byte(c.ctl)); err != nil {
					return nil, err
				}
			}
		}
		total := now() - start
		s := make([]float64, len(samples))
		for i, v := range samples {
			s[i] = float64(v)
		}
		sortFloats(s)
		return fsopResult{Total: total, Latency: latencyResult{
			Samples: len(s),
			P50:     percentileSorted(s, 0.5),
			P99:     percentileSorted(s, 0.99),
			P999:    percentileSorted(s, 0.999),
			Max:     percentileSorted(s, 1),
		}}, nil
	case "rmdir":
		for _, name := range c.pipeNames() {
			err := retryEINTR(func() error { return unix.Rmdir(path(name, "")) })
			if err != nil && !errors.Is(err, unix.ENOENT) {
				return nil, fmt.Errorf("rmdir %s: %w", name, err)
			}
		}
		return fsopResult{}, nil
	case "pending":
		b, err := readSmallFile(path(c.prefix, "pending"))
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("pending of %s: %q", c.prefix, b)
		}
		return fsopResult{Pending: n}, nil
	case "waitparked":
		// A parker's reads are parked once each pipe's ctl counts its
		// reader; only then does the measurement beside them start.
		deadline := time.Now().Add(60 * time.Second)
		for _, name := range c.pipeNames() {
			for {
				st, err := readSmallFile(path(name, "ctl"))
				if err != nil {
					return nil, err
				}
				if bytes.Contains(st, []byte("\nreaders 1\n")) {
					break
				}
				if time.Now().After(deadline) {
					return nil, fmt.Errorf("the reader of %s did not park within 60s; ctl:\n%s", name, st)
				}
				time.Sleep(time.Millisecond)
			}
		}
		return fsopResult{}, nil
	case "waitlink":
		// A link's messages flow once its status says up; a rendezvous
		// takes a dial, perhaps a listen, and a handshake.
		deadline := time.Now().Add(30 * time.Second)
		for _, name := range c.pipeNames() {
			for {
				st, err := readSmallFile(path(name, "ctl"))
				if err != nil {
					return nil, err
				}
				state := linkState(st)
				if state == "up" {
					break
				}
				if state == "failed" || time.Now().After(deadline) {
					return nil, fmt.Errorf("the link of %s is %s, not up; ctl:\n%s", name, state, st)
				}
				time.Sleep(time.Millisecond)
			}
		}
		return fsopResult{}, nil
	}
	return nil, fmt.Errorf("unknown --op %q", c.op)
}

// linkState is the STATE of the `link KIND TARGET STATE [REASON]` line of
// a pipe's status, or "none".
func linkState(status []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "link" {
			if len(f) >= 4 {
				return f[3]
			}
			return f[1]
		}
	}
	return "none"
}

// mountInfo waits for the mount to be ready (its ctl exists) and reads
// the daemon's pid from it.
func mountInfo(mount string) (fsopResult, error) {
	ctl := filepath.Join(mount, "ctl")
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st unix.Stat_t
		err := retryEINTR(func() error { return unix.Stat(ctl, &st) })
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fsopResult{}, fmt.Errorf("%s is not ready: %w", mount, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, err := readSmallFile(ctl)
	if err != nil {
		return fsopResult{}, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "pid "); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				break
			}
			return fsopResult{PID: pid}, nil
		}
	}
	return fsopResult{}, fmt.Errorf("%s has no pid line:\n%s", ctl, b)
}

func retryEINTR(f func() error) error {
	for {
		if err := f(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// parkerResult is what a parker reports.
type parkerResult struct {
	EOF  int `json:"eof"`  // reads that ended with end of file
	Data int `json:"data"` // messages read (none expected)
}

// runParker blocks one reader on the `out` of each pipe named by c, each
// in a blocking read(2) of its own thread, until the pipes are destroyed
// and the reads end with end of file.
func runParker(c *clientConfig) (any, error) {
	names := c.pipeNames()
	fds := make([]int, len(names))
	for i, name := range names {
		fd, err := openFile(filepath.Join(c.mount, name, "out"), unix.O_RDONLY)
		if err != nil {
			return nil, err
		}
		fds[i] = fd
	}
	var (
		mu   sync.Mutex
		res  parkerResult
		errs []error
		wg   sync.WaitGroup
	)
	for _, fd := range fds {
		wg.Go(func() {
			defer unix.Close(fd)
			buf := make([]byte, 64)
			for {
				n, err := c.sys.readOnce(fd, buf) // not raw: many goroutines block here
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case n == 0:
					res.EOF++
				default:
					res.Data++
				}
				mu.Unlock()
				if err != nil || n == 0 {
					return
				}
			}
		})
	}
	c.signalReady()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return res, nil
}
