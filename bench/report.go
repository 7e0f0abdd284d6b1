package bench

import (
	"fmt"
	"math"
	"time"
)

// Report is the result of a run.
type Report struct {
	Version string `json:"version"`
	Kernel  string `json:"kernel"`
	CPUs    int    `json:"cpus"`
	// LoadAvg is /proc/loadavg when the run started: other work on the
	// machine shows in every figure.
	LoadAvg  string        `json:"loadavg"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Rounds   int           `json:"rounds"`
	Mount    string        `json:"mount"`
	Private  bool          `json:"private_mount"`
	Figures  []*Figure     `json:"figures"`
	// Failures are checks that did not hold (a message lost, a
	// measurement that could not run); a run with failures is not a
	// valid measurement.
	Failures []string `json:"failures"`
}

// Figure is one measured quantity of a workload, per transport and round.
type Figure struct {
	ID       string `json:"id"`
	Workload string `json:"workload"`
	Title    string `json:"title"`
	Unit     string `json:"unit"`
	// Rounds holds, per transport, the value of every round (NaN, shown
	// as null, where a round produced none).
	Rounds map[transport][]float64 `json:"-"`
	// Filled in by Report.finish:
	Results map[transport]*result `json:"results"`
	Ratio   *summary              `json:"ratio_pipefs_fifo,omitempty"`
	Target  string                `json:"target,omitempty"`
	Met     *bool                 `json:"met,omitempty"`

	format func(float64) string
	target *target
}

type result struct {
	Rounds []jsonFloat `json:"rounds"`
	summary
}

// jsonFloat is a float64 that encodes NaN as null.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return fmt.Appendf(nil, "%g", float64(f)), nil
}

// target is what the issue asks of a figure.
type target struct {
	text string
	met  func(r *Report, f *Figure) (met, known bool)
}

// figure adds a figure to the report, or returns the one with that id.
func (r *Report) figure(id, workload, title, unit string, format func(float64) string, tg *target) *Figure {
	for _, f := range r.Figures {
		if f.ID == id {
			return f
		}
	}
	f := &Figure{ID: id, Workload: workload, Title: title, Unit: unit, Rounds: map[transport][]float64{}, format: format, target: tg}
	r.Figures = append(r.Figures, f)
	return f
}

func (r *Report) lookup(id string) *Figure {
	for _, f := range r.Figures {
		if f.ID == id {
			return f
		}
	}
	return nil
}

// set records the value of round for transport t.
func (f *Figure) set(t transport, round, rounds int, v float64) {
	vals := f.Rounds[t]
	if vals == nil {
		vals = make([]float64, rounds)
		for i := range vals {
			vals[i] = math.NaN()
		}
		f.Rounds[t] = vals
	}
	vals[round] = v
}

func (r *Report) failf(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// finish computes the summaries, ratios and verdicts.
func (r *Report) finish() {
	for _, f := range r.Figures {
		f.Results = map[transport]*result{}
		for t, vals := range f.Rounds {
			s, ok := summarize(vals)
			if !ok {
				continue
			}
			res := &result{summary: s}
			for _, v := range vals {
				res.Rounds = append(res.Rounds, jsonFloat(v))
			}
			f.Results[t] = res
		}
		// The ratio is taken round by round, between measurements
		// that ran back to back, and then summarised.
		p, q := f.Rounds[tPipefs], f.Rounds[tFIFO]
		if len(p) > 0 && len(p) == len(q) {
			ratios := make([]float64, len(p))
			for i := range p {
				ratios[i] = p[i] / q[i]
			}
			if s, ok := summarize(ratios); ok {
				f.Ratio = &s
			}
		}
		if f.target != nil {
			f.Target = f.target.text
			if met, known := f.target.met(r, f); known {
				f.Met = &met
			}
		}
	}
}

func (f *Figure) median(t transport) (float64, bool) {
	s, ok := summarize(f.Rounds[t])
	return s.Median, ok
}

// Targets, from the issue.

func ratioAtLeast(x float64) *target {
	return &target{text: fmt.Sprintf("≥%g×FIFO", x), met: func(_ *Report, f *Figure) (bool, bool) {
		if f.Ratio == nil {
			return false, false
		}
		return f.Ratio.Median >= x, true
	}}
}

func atMost(x float64, text string) *target {
	return &target{text: text, met: func(_ *Report, f *Figure) (bool, bool) {
		m, ok := f.median(tPipefs)
		return ok && m <= x, ok
	}}
}

func below(x float64, text string) *target {
	return &target{text: text, met: func(_ *Report, f *Figure) (bool, bool) {
		m, ok := f.median(tPipefs)
		return ok && m < x, ok
	}}
}

func atLeast(x float64, text string) *target {
	return &target{text: text, met: func(_ *Report, f *Figure) (bool, bool) {
		m, ok := f.median(tPipefs)
		return ok && m >= x, ok
	}}
}

// zero requires every round of every transport to be 0.
func zero() *target {
	return &target{text: "=0", met: func(_ *Report, f *Figure) (bool, bool) {
		known := false
		for _, vals := range f.Rounds {
			for _, v := range vals {
				if math.IsNaN(v) {
					continue
				}
				known = true
				if v != 0 {
					return false, true
				}
			}
		}
		return true, known
	}}
}

// atLeastFigure requires pipefs's median to reach pipefs's median of
// another figure.
func atLeastFigure(id, text string) *target {
	return &target{text: text, met: func(r *Report, f *Figure) (bool, bool) {
		other := r.lookup(id)
		if other == nil {
			return false, false
		}
		a, ok1 := f.median(tPipefs)
		b, ok2 := other.median(tPipefs)
		return ok1 && ok2 && a >= b, ok1 && ok2
	}}
}
