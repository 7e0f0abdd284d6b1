package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Number formats of the table. Every cell is a number followed by an
// optional SI suffix (k, M, G), so that the table can be read back.

// fmtSI writes v with three significant digits and an SI suffix: 58.1k,
// 1.82M.
func fmtSI(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	suffix := ""
	for _, s := range []struct {
		scale float64
		name  string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if math.Abs(v) >= s.scale*0.9995 {
			v /= s.scale
			suffix = s.name
			break
		}
	}
	digits := 2
	switch a := math.Abs(v); {
	case a >= 99.95:
		digits = 0
	case a >= 9.995:
		digits = 1
	}
	if suffix == "" && v == math.Trunc(v) {
		digits = 0
	}
	return strconv.FormatFloat(v, 'f', digits, 64) + suffix
}

// fmtFixed returns a formatter with d decimals.
func fmtFixed(d int) func(float64) string {
	return func(v float64) string {
		if math.IsNaN(v) {
			return "—"
		}
		return strconv.FormatFloat(v, 'f', d, 64)
	}
}

// fmtMicros formats nanoseconds as microseconds.
func fmtMicros(v float64) string { return fmtFixed(1)(v / 1e3) }

// fmtMB formats bytes as megabytes (10^6).
func fmtMB(v float64) string { return fmtFixed(1)(v / 1e6) }

// cell is "median (min–max)" of one transport, or "—".
func (f *Figure) cell(t transport) string {
	r, ok := f.Results[t]
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%s (%s–%s)", f.format(r.Median), f.format(r.Min), f.format(r.Max))
}

// tableColumns are the transports shown, in order, with their headings.
var tableColumns = []struct {
	t    transport
	name string
}{{tPipefs, "pipefs"}, {tFIFO, "FIFO"}, {tSocket, "socket"}}

// WriteTable prints the report as a table: per figure the median and
// range over the rounds for each transport, the ratio pipefs/FIFO, and
// the target with its verdict. Columns are separated by at least two
// spaces, and no cell holds two spaces in a row.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "pipefs bench: pipefs %s, Linux %s, %d CPUs, %s, load average %s at the start, %d round(s) of %v, mount %s",
		r.Version, r.Kernel, r.CPUs, runtime.Version(), r.LoadAvg, r.Rounds, r.Duration, r.Mount)
	if r.Private {
		fmt.Fprint(w, " (private)")
	}
	fmt.Fprint(w, "\nmedian (min–max) over the rounds; socket is an AF_UNIX SOCK_SEQPACKET socketpair\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"workload", "figure"}
	for _, c := range tableColumns {
		head = append(head, c.name)
	}
	head = append(head, "pipefs/FIFO", "target")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, f := range r.Figures {
		row := []string{f.Workload, f.Title + ", " + f.Unit}
		if f.Unit == "" {
			row[1] = f.Title
		}
		for _, c := range tableColumns {
			row = append(row, f.cell(c.t))
		}
		ratio := "—"
		if f.Ratio != nil {
			ratio = fmtFixed(3)(f.Ratio.Median)
		}
		verdict := "—"
		if f.Target != "" {
			switch {
			case f.Met == nil:
				verdict = f.Target + ": n/a"
			case *f.Met:
				verdict = f.Target + ": met"
			default:
				verdict = f.Target + ": MISSED"
			}
		}
		row = append(row, ratio, verdict)
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Failures) > 0 {
		fmt.Fprintln(w)
		for _, f := range r.Failures {
			fmt.Fprintf(w, "FAILED: %s\n", f)
		}
	}
	return nil
}

// WriteJSON prints the report as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
