package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The figures of a benchmark depend on the machine, so no test here
// checks one: the unit tests check the arithmetic, and the smoke test
// checks that a short run of the real binary completes, prints a table
// that reads back, and that every message was delivered exactly once.

func TestPercentile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct{ q, want float64 }{
		{0.5, 5}, {0.9, 9}, {0.99, 10}, {0.999, 10}, {1, 10}, {0.01, 1}, {0, 1},
	} {
		if got := percentileSorted(s, c.q); got != c.want {
			t.Errorf("percentile %v of 1..10 = %v, want %v", c.q, got, c.want)
		}
	}
	if got := percentileSorted(nil, 0.5); !math.IsNaN(got) {
		t.Errorf("percentile of nothing = %v, want NaN", got)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10000: "10,000", 1000000: "1,000,000", -1000: "-1,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want summary
	}{
		{[]float64{3, 1, 2}, summary{2, 1, 3}},
		{[]float64{4, 1, 3, 2}, summary{2.5, 1, 4}},
		{[]float64{math.NaN(), 7}, summary{7, 7, 7}},
	} {
		got, ok := summarize(c.in)
		if !ok || got != c.want {
			t.Errorf("summarize(%v) = %+v, %v; want %+v", c.in, got, ok, c.want)
		}
	}
	if _, ok := summarize([]float64{math.NaN()}); ok {
		t.Error("summarize(NaN) reported a summary")
	}
}

func TestFormatSIReadsBack(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {7, "7"}, {12.5, "12.5"}, {999, "999"}, {1000, "1.00k"}, {58123, "58.1k"},
		{123456, "123k"}, {1.82e6, "1.82M"}, {2.4e10, "24.0G"}, {math.NaN(), "—"},
	} {
		got := fmtSI(c.v)
		if got != c.want {
			t.Errorf("fmtSI(%v) = %q, want %q", c.v, got, c.want)
			continue
		}
		if back, err := parseSI(got); !math.IsNaN(c.v) && (err != nil || math.Abs(back-c.v) > 0.006*c.v) {
			t.Errorf("fmtSI(%v) = %q reads back as %v, %v", c.v, got, back, err)
		}
	}
}

func TestMessageHeader(t *testing.T) {
	m := newMessage(64)
	want := header{kind: kindData, id: 0xbeef, seq: 1<<40 + 5, stamp: 1<<62 + 3}
	putHeader(m, want)
	got, err := parseHeader(m)
	if err != nil || got != want {
		t.Fatalf("header %+v reads back as %+v, %v (message %q)", want, got, err, m)
	}
	if bytes.IndexByte(m[:63], '\n') >= 0 || m[63] != '\n' {
		t.Fatalf("a message must be one line: %q", m)
	}
	putSeq(m, 7)
	if got, _ := parseHeader(m); got.seq != 7 || got.id != want.id {
		t.Fatalf("after putSeq(7): %+v", got)
	}
	if _, err := parseHeader(m[:40]); err == nil {
		t.Fatal("a message cut short parsed")
	}
}

func TestExactlyOnce(t *testing.T) {
	reader := func(seqs map[int][]uint64) readerResult {
		r := readerResult{Seen: map[int][]byte{}}
		for id, ss := range seqs {
			for _, s := range ss {
				if !setBit(r.Seen, id, s) {
					r.Dups++
				}
			}
		}
		return r
	}
	ws := []writerResult{{ID: 0, Sent: 3}, {ID: 1, Sent: 2}}
	for _, c := range []struct {
		name      string
		rs        []readerResult
		lost, dup int64
	}{
		{"all once", []readerResult{reader(map[int][]uint64{0: {0, 2}, 1: {1}}), reader(map[int][]uint64{0: {1}, 1: {0}})}, 0, 0},
		{"one lost", []readerResult{reader(map[int][]uint64{0: {0, 2}, 1: {1}}), reader(map[int][]uint64{1: {0}})}, 1, 0},
		{"twice across readers", []readerResult{reader(map[int][]uint64{0: {0, 1, 2}, 1: {0, 1}}), reader(map[int][]uint64{0: {1}})}, 0, 1},
		{"twice in one reader", []readerResult{reader(map[int][]uint64{0: {0, 1, 2, 2}, 1: {0, 1}})}, 0, 1},
		{"never sent", []readerResult{reader(map[int][]uint64{0: {0, 1, 2, 3}, 1: {0, 1}, 9: {0}})}, 0, 2},
	} {
		lost, dup := exactlyOnce(ws, c.rs)
		if lost != c.lost || dup != c.dup {
			t.Errorf("%s: lost %d, duplicated %d; want %d, %d", c.name, lost, dup, c.lost, c.dup)
		}
	}
}

func TestTableReadsBack(t *testing.T) {
	r := &Report{Version: "test", Kernel: "k", CPUs: 2, Duration: time.Second, Rounds: 2, Mount: "/m", Failures: []string{}}
	f := r.figure("w1.rate", "W1", "64 B messages", "msg/s", fmtSI, ratioAtLeast(0.03))
	for i, v := range []float64{50e3, 60e3} {
		f.set(tPipefs, i, 2, v)
	}
	for i, v := range []float64{1.5e6, 2e6} {
		f.set(tFIFO, i, 2, v)
	}
	lost := r.figure("w5.lost", "W5", "lost", "msgs", fmtSI, zero())
	lost.set(tPipefs, 0, 2, 0)
	lost.set(tPipefs, 1, 2, 0)
	r.finish()
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	rows := parseTable(t, b.String())
	w1 := rows["W1 64 B messages, msg/s"]
	if w1 == nil {
		t.Fatalf("no W1 row in\n%s", b.String())
	}
	if got := w1["pipefs"]; got != (summary{55e3, 50e3, 60e3}) {
		t.Errorf("pipefs cell reads back as %+v, want 55k (50k–60k)\n%s", got, b.String())
	}
	if got := w1["pipefs/FIFO"]; got.Median != 0.032 {
		t.Errorf("ratio reads back as %v, want the mean of 50k/1.5M and 60k/2M, 0.032", got.Median)
	}
	if got := rows["W5 lost, msgs"]["verdict"]; got.Median != 1 {
		t.Errorf("W5 lost row not met:\n%s", b.String())
	}
	if _, ok := rows["W5 lost, msgs"]["FIFO"]; ok {
		t.Errorf("an empty cell read back as a value")
	}
}

// TestSmokeRun runs the real binary as a user would, for a short time:
// every workload, one round, W6 and W7 scaled down; W8 links two private
// mounts over loopback.
func TestSmokeRun(t *testing.T) {
	bin := buildPipefs(t)
	out := runBench(t, bin, "--duration", "200ms", "--rounds", "1",
		"--scale-pipes", "300", "--scale-readers", "100", "--w7-messages", "50000")
	rows := parseTable(t, out)
	for _, w := range Workloads() {
		found := false
		for name := range rows {
			found = found || strings.HasPrefix(name, w+" ")
		}
		if !found {
			t.Errorf("no row for %s in the table:\n%s", w, out)
		}
	}
	for _, name := range []string{"W1 64 B messages, msg/s", "W3 128 KiB writes of 64 B lines, msg/s", "W4 round trip p50, µs", "W5 16 writers, 16 readers, msg/s"} {
		row := rows[name]
		for _, col := range []string{"pipefs", "FIFO"} {
			if v, ok := row[col]; !ok || !(v.Median > 0) {
				t.Errorf("%s: no positive %s figure in the table:\n%s", name, col, out)
			}
		}
	}
	for _, name := range []string{"W5 lost, msgs", "W5 duplicated, msgs"} {
		for _, col := range []string{"pipefs", "FIFO", "socket"} {
			if v, ok := rows[name][col]; !ok || v != (summary{}) {
				t.Errorf("%s over %s = %+v, want 0 (0–0):\n%s", name, col, v, out)
			}
		}
	}
	// W8: both figures over the link, with their local counterparts
	// and the ratios of the same rounds.
	for _, name := range []string{
		"W8 local 64 B messages, msg/s", "W8 link 64 B messages, msg/s", "W8 link / local W1",
		"W8 local 128 KiB writes of 64 B lines, msg/s", "W8 link 128 KiB writes of 64 B lines, msg/s", "W8 link / local W3",
	} {
		if v, ok := rows[name]["pipefs"]; !ok || !(v.Median > 0) {
			t.Errorf("%s: no positive figure in the table:\n%s", name, out)
		}
	}
	if rows["W6 W1 beside / idle"]["pipefs"].Median <= 0 {
		t.Errorf("W6 has no rate beside the parked readers:\n%s", out)
	}
	if strings.Contains(out, "FAILED") {
		t.Errorf("the run reported failures:\n%s", out)
	}
}

// TestSmokeJSON checks the machine-readable output over two rounds.
func TestSmokeJSON(t *testing.T) {
	bin := buildPipefs(t)
	out := runBench(t, bin, "--duration", "100ms", "--rounds", "2", "--only", "W1,W5,W8", "--json")
	var rep struct {
		Rounds  int `json:"rounds"`
		Figures []struct {
			ID      string `json:"id"`
			Results map[string]struct {
				Rounds []*float64 `json:"rounds"`
				Median float64    `json:"median"`
			} `json:"results"`
		} `json:"figures"`
		Failures []string `json:"failures"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, out)
	}
	if rep.Rounds != 2 || len(rep.Failures) != 0 {
		t.Errorf("rounds %d, failures %q; want 2 and none", rep.Rounds, rep.Failures)
	}
	ids := map[string]bool{}
	for _, f := range rep.Figures {
		ids[f.ID] = true
		for tr, res := range f.Results {
			if len(res.Rounds) != 2 {
				t.Errorf("%s over %s: %d rounds, want 2", f.ID, tr, len(res.Rounds))
			}
			if strings.HasPrefix(f.ID, "w5.lost") || strings.HasPrefix(f.ID, "w5.dup") {
				for _, v := range res.Rounds {
					if v == nil || *v != 0 {
						t.Errorf("%s over %s: %v, want 0 in every round", f.ID, tr, res.Rounds)
					}
				}
			}
		}
	}
	for _, id := range []string{"w1.rate", "w5.rate", "w5.lost", "w5.dup", "w8.w1.link", "w8.w1.ratio", "w8.w3.link", "w8.w3.ratio"} {
		if !ids[id] {
			t.Errorf("no figure %s in the JSON output", id)
		}
	}
}

// requireFUSE skips a test that needs to mount, or fails it when
// PIPEFS_REQUIRE_FUSE=1 says that this machine must be able to.
func requireFUSE(t *testing.T) {
	t.Helper()
	why := ""
	if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		why = fmt.Sprintf("cannot open /dev/fuse: %v", err)
	} else {
		f.Close()
		if _, err := exec.LookPath("fusermount3"); err != nil && os.Geteuid() != 0 {
			why = "not root and no fusermount3"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("PIPEFS_REQUIRE_FUSE") == "1" {
		t.Fatalf("%s (PIPEFS_REQUIRE_FUSE=1 requires FUSE)", why)
	}
	t.Skipf("FUSE unavailable: %s (set PIPEFS_REQUIRE_FUSE=1 to make this a failure)", why)
}

// buildPipefs builds the pipefs command into the test's directory.
func buildPipefs(t *testing.T) string {
	t.Helper()
	requireFUSE(t)
	bin := filepath.Join(t.TempDir(), "pipefs")
	out, err := exec.Command("go", "build", "-o", bin, "pipefs/cmd/pipefs").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBench runs `pipefs bench` with a bound far above what it needs, so
// that a hang fails instead of stalling the suite.
func runBench(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"bench"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("pipefs bench %s did not finish in 90s; progress:\n%s", strings.Join(args, " "), stderr.String())
	}
	if err != nil {
		t.Fatalf("pipefs bench %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "round 1/") {
		t.Errorf("no progress lines on stderr:\n%s", stderr.String())
	}
	return stdout.String()
}

var (
	cellRE    = regexp.MustCompile(`^(\S+) \((\S+)–(\S+)\)$`)
	columnsRE = regexp.MustCompile(`\s{2,}`)
)

// parseTable reads the table of `pipefs bench` back: per row ("W1 64 B
// messages, msg/s"), per column, the median and range of the cell. The
// ratio column reads as a median only, and the verdict column as 1 for
// met and 0 otherwise. Empty cells are left out.
func parseTable(t *testing.T, out string) map[string]map[string]summary {
	t.Helper()
	rows := map[string]map[string]summary{}
	var head []string
	for _, line := range strings.Split(out, "\n") {
		cols := columnsRE.Split(strings.TrimSpace(line), -1)
		if len(cols) > 0 && cols[0] == "workload" {
			head = cols
			continue
		}
		if head == nil || len(cols) < 2 || !regexp.MustCompile(`^W\d$`).MatchString(cols[0]) {
			continue
		}
		if len(cols) != len(head) {
			t.Fatalf("row has %d columns, the heading %d: %q", len(cols), len(head), line)
		}
		row := map[string]summary{}
		for i, cell := range cols[2:] {
			col := head[i+2]
			switch {
			case cell == "—":
			case col == "pipefs/FIFO":
				v, err := strconv.ParseFloat(cell, 64)
				if err != nil {
					t.Fatalf("ratio %q: %v", cell, err)
				}
				row[col] = summary{Median: v}
			case col == "target":
				met := 0.0
				if strings.HasSuffix(cell, ": met") {
					met = 1
				} else if !strings.HasSuffix(cell, ": MISSED") && !strings.HasSuffix(cell, ": n/a") {
					t.Fatalf("target cell %q has no verdict", cell)
				}
				row["verdict"] = summary{Median: met}
			default:
				m := cellRE.FindStringSubmatch(cell)
				if m == nil {
					t.Fatalf("cell %q of %s is not \"median (min–max)\"", cell, col)
				}
				var s summary
				var err error
				for i, p := range []*float64{&s.Median, &s.Min, &s.Max} {
					if *p, err = parseSI(m[i+1]); err != nil {
						t.Fatalf("cell %q: %v", cell, err)
					}
				}
				if s.Min > s.Median || s.Median > s.Max {
					t.Errorf("cell %q: median outside its range", cell)
				}
				row[col] = s
			}
		}
		rows[cols[0]+" "+cols[1]] = row
	}
	if head == nil {
		t.Fatalf("no table heading in:\n%s", out)
	}
	return rows
}

// parseSI reads a number as the table prints it: 58.1k, 1.82M, 12.5.
func parseSI(s string) (float64, error) {
	scale := 1.0
	switch {
	case strings.HasSuffix(s, "k"):
		scale, s = 1e3, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		scale, s = 1e6, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		scale, s = 1e9, strings.TrimSuffix(s, "G")
	}
	v, err := strconv.ParseFloat(s, 64)
	return v * scale, err
}
