package pipefs_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The two ways requests reach the daemon: FUSE over io_uring where the
// kernel offers it, and /dev/fuse. The rest of the suite runs over the
// first where it exists; with PIPEFS_TEST_IO_URING=0 (.ci/run does a
// second pass) over the second. This test runs both side by side and
// checks that each is really the one in use.

const ringParam = "/sys/module/fuse/parameters/enable_uring"

// requireRing skips a test that needs FUSE over io_uring on a kernel
// without it, unless PIPEFS_REQUIRE_IO_URING=1 makes that a failure.
func requireRing(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(ringParam)
	why := ""
	switch {
	case err != nil:
		why = fmt.Sprintf("this kernel has no FUSE over io_uring (%v)", err)
	case strings.TrimSpace(string(b)) != "Y" && os.Geteuid() != 0:
		why = ringParam + " is off and only root can switch it on"
	}
	// kernel.io_uring_disabled: 1 allows only privileged processes
	// (and a group) to create rings, 2 none.
	if d, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled"); err == nil && why == "" {
		switch v := strings.TrimSpace(string(d)); {
		case v == "2", v == "1" && os.Geteuid() != 0:
			why = "io_uring is disabled here (kernel.io_uring_disabled = " + v + ")"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("PIPEFS_REQUIRE_IO_URING") == "1" {
		t.Fatalf("PIPEFS_REQUIRE_IO_URING=1 but %s", why)
	}
	t.Skip(why)
}

// transportFlags is what mountWith adds for the suite's transport.
func transportFlags() []string {
	if os.Getenv("PIPEFS_TEST_IO_URING") == "0" {
		return []string{"--io-uring=false"}
	}
	return nil
}

func TestTransports(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"io_uring", []string{"--io-uring=true"}, "io_uring"},
		{"dev_fuse", []string{"--io-uring=false"}, "/dev/fuse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "io_uring" {
				requireRing(t)
				if os.Geteuid() == 0 {
					// As root the daemon switches the kernel's
					// parameter on itself (docs/guide.md).
					if err := os.WriteFile(ringParam, []byte("N"), 0); err != nil {
						t.Fatalf("switching %s off for the test: %v", ringParam, err)
					}
					t.Cleanup(func() { os.WriteFile(ringParam, []byte("Y"), 0) })
				}
			}
			m := mountPipefs(t, tc.flags...)
			if tc.want == "io_uring" {
				if b, _ := os.ReadFile(ringParam); strings.TrimSpace(string(b)) != "Y" {
					t.Errorf("%s is %q after the mount, want Y", ringParam, strings.TrimSpace(string(b)))
				}
			}
			m.mkdir(t, "p")
			m.sh(t, `echo hello > "$M/p/in"`)
			if got := m.sh(t, `head -n 1 "$M/p/out"`); got != "hello\n" {
				t.Fatalf("head -n 1 out = %q, want %q", got, "hello\n")
			}
			if got := m.status(t, "")["transport"]; got != tc.want {
				t.Fatalf("root ctl: transport %q, want %q", got, tc.want)
			}

			t.Run("largest packet", func(t *testing.T) {
				m.mkdir(t, "big")
				m.sh(t, `echo "mode packets" > "$M/big/ctl"`)
				msg := bytes.Repeat([]byte("0123456789abcdef"), 1044480/16)
				src := filepath.Join(t.TempDir(), "msg")
				if err := os.WriteFile(src, msg, 0o644); err != nil {
					t.Fatal(err)
				}
				m.sh(t, `dd if=`+src+` of="$M/big/in" bs=1044480 count=1 2>/dev/null`)
				got := m.sh(t, `dd if="$M/big/out" bs=1048576 count=1 2>/dev/null`)
				if got != string(msg) {
					t.Fatalf("a %d-byte packet came back as %d bytes (equal: %v)", len(msg), len(got), got == string(msg))
				}
			})

			// Every parked read holds a ring entry until it is
			// answered: far more readers than the ring starts with
			// must all park, and all be answered, each once.
			t.Run("many parked readers", func(t *testing.T) {
				const n = 60
				m.mkdir(t, "many")
				readers := make([]*proc, n)
				for i := range readers {
					readers[i] = m.start(t, "head", "-n", "1", m.path("many/out"))
				}
				m.waitStatus(t, "many", "readers", strconv.Itoa(n))
				// A namespace request still gets through.
				m.mkdir(t, "beside")
				m.sh(t, `i=0; while [ $i -lt `+strconv.Itoa(n)+` ]; do i=$((i+1)); echo "m$i"; done > "$M/many/in"`)
				var got []string
				for _, r := range readers {
					got = append(got, strings.TrimSuffix(r.waitOK(t), "\n"))
				}
				wantEachOnce(t, "parked readers", got, "m", n)
			})

			// A burst: a hundred threads on one CPU read at the
			// same moment, more than the ring has entries for that
			// CPU's queue. The kernel queues those it has no entry
			// for; they must all be served, and all park.
			t.Run("burst of readers on one CPU", func(t *testing.T) {
				py := requirePython(t)
				const n = 100
				m.mkdir(t, "burst")
				const script = `
import os, sys, threading
n, path, cpu = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
os.sched_setaffinity(0, {cpu})
bar = threading.Barrier(n)
def read():
    fd = os.open(path, os.O_RDONLY)
    bar.wait()
    os.write(1, os.read(fd, 64))  # one line, one write(2): threads do not interleave
threads = [threading.Thread(target=read) for _ in range(n)]
for th in threads: th.start()
for th in threads: th.join()
`
				var cpus unix.CPUSet
				if err := unix.SchedGetaffinity(0, &cpus); err != nil || cpus.Count() < 2 {
					t.Skip("needs two CPUs: the burst on one, the checks from another")
				}
				burstCPU, otherCPU := -1, -1
				for c := 0; otherCPU < 0; c++ {
					if cpus.IsSet(c) {
						if burstCPU < 0 {
							burstCPU = c
						} else {
							otherCPU = c
						}
					}
				}
				p := m.start(t, py, "-c", script, strconv.Itoa(n), m.path("burst/out"), strconv.Itoa(burstCPU))
				// Watched from the other CPU only: a request from the
				// burst's CPU would commit an entry of its queue, and
				// take a queued read with it.
				deadline := time.Now().Add(failAfter)
				for {
					st, _, _ := m.exec(t, "taskset", "-c", strconv.Itoa(otherCPU), "cat", m.path("burst/ctl"))
					if ctlLine(st, "readers") == "readers "+strconv.Itoa(n) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("after %v, %d readers of a burst on CPU %d: ctl says %q", failAfter, n, burstCPU, ctlLine(st, "readers"))
					}
					time.Sleep(10 * time.Millisecond)
				}
				m.sh(t, `i=0; while [ $i -lt `+strconv.Itoa(n)+` ]; do i=$((i+1)); echo "b$i"; done | taskset -c `+strconv.Itoa(otherCPU)+` tee "$M/burst/in" >/dev/null`)
				wantEachOnce(t, "readers of a burst", strings.Fields(p.waitOK(t)), "b", n)
			})
		})
	}
}

// wantEachOnce checks that readers got the messages prefix1..prefixN, each
// exactly once, in any order.
func wantEachOnce(t *testing.T, who string, got []string, prefix string, n int) {
	t.Helper()
	want := make([]string, 0, n)
	for i := 1; i <= n; i++ {
		want = append(want, prefix+strconv.Itoa(i))
	}
	got = slices.Clone(got)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%d %s got %q, want each of %q once", n, who, got, want)
	}
}
