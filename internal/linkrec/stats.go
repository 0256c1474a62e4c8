package linkrec

import (
	"math"
	"slices"
	"time"
)

// PerInterval sums the sizes of the frames that pass keep into n
// intervals of width from start (frames outside are ignored).
func PerInterval(frames []Frame, start time.Time, width time.Duration, n int, keep func(Frame) bool) []float64 {
	out := make([]float64, n)
	for _, f := range frames {
		if keep != nil && !keep(f) {
			continue
		}
		i := int(f.At.Sub(start) / width)
		if f.At.Before(start) || i >= n {
			continue
		}
		out[i] += float64(f.Size)
	}
	return out
}

// Sizes is the set of frame sizes of the frames that pass keep, ascending.
func Sizes(frames []Frame, keep func(Frame) bool) []int {
	var s []int
	for _, f := range frames {
		if keep == nil || keep(f) {
			s = append(s, f.Size)
		}
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// KolmogorovSmirnov is the two-sample Kolmogorov–Smirnov test of a and b:
// the largest distance d between their empirical distribution functions,
// and the asymptotic p-value of seeing one that large if both samples come
// from one distribution (with the usual small-sample correction of the
// argument, λ = (√ne + 0.12 + 0.11/√ne)·d, ne = nm/(n+m)). With ties
// (discrete data) the test is conservative: it rejects less often than its
// level.
func KolmogorovSmirnov(a, b []float64) (d, p float64) {
	if len(a) == 0 || len(b) == 0 {
		return 0, 1
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		x := min(a[i], b[j])
		for i < len(a) && a[i] == x {
			i++
		}
		for j < len(b) && b[j] == x {
			j++
		}
		d = max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	ne := math.Sqrt(float64(len(a)) * float64(len(b)) / float64(len(a)+len(b)))
	return d, ksQ((ne + 0.12 + 0.11/ne) * d)
}

// ksQ is the Kolmogorov distribution's tail, Q(λ) = 2 Σ (−1)^(k−1) e^(−2k²λ²).
func ksQ(lambda float64) float64 {
	if lambda < 1e-3 {
		return 1
	}
	var sum float64
	sign := 1.0
	for k := 1; k <= 100; k++ {
		term := sign * math.Exp(-2*float64(k*k)*lambda*lambda)
		sum += term
		if math.Abs(term) < 1e-12 {
			break
		}
		sign = -sign
	}
	return min(max(2*sum, 0), 1)
}
