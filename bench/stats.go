package bench

import (
	"math"
	"slices"
	"strconv"
)

func sortFloats(s []float64) { slices.Sort(s) }

// percentileSorted is the nearest-rank percentile q (0 < q ≤ 1) of
// sorted samples: the smallest sample with at least q of all samples at
// or below it. NaN for no samples.
func percentileSorted(s []float64, q float64) float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// summary is the median and range of one figure over the rounds.
type summary struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// summarize ignores NaN values (rounds that produced no figure).
func summarize(values []float64) (summary, bool) {
	s := make([]float64, 0, len(values))
	for _, v := range values {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return summary{}, false
	}
	slices.Sort(s)
	return summary{Median: median(s), Min: s[0], Max: s[len(s)-1]}, true
}

// median of sorted values: the middle one, or the mean of the middle two.
func median(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// thousands writes n with thousands separators: 10,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
