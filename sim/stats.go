package sim

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Stat accumulates a sample's count, mean and variance, and keeps a
// uniform reservoir of it for quantiles.
type Stat struct {
	N          int64
	Sum, SumSq float64
	res        []float64
	r          *rand.Rand
	cap        int
}

func newStat(r *rand.Rand, reservoir int) *Stat { return &Stat{r: r, cap: reservoir} }

func (s *Stat) add(x float64) {
	s.N++
	s.Sum += x
	s.SumSq += x * x
	if s.cap == 0 {
		return
	}
	if len(s.res) < s.cap {
		s.res = append(s.res, x)
	} else if j := s.r.Int64N(s.N); j < int64(s.cap) {
		s.res[j] = x
	}
}

// Mean is the sample mean (NaN when empty).
func (s *Stat) Mean() float64 {
	if s == nil || s.N == 0 {
		return math.NaN()
	}
	return s.Sum / float64(s.N)
}

// StdDev is the sample standard deviation.
func (s *Stat) StdDev() float64 {
	if s == nil || s.N < 2 {
		return math.NaN()
	}
	m := s.Mean()
	v := (s.SumSq - float64(s.N)*m*m) / float64(s.N-1)
	return math.Sqrt(max(v, 0))
}

// StdErr is the standard error of the mean.
func (s *Stat) StdErr() float64 { return s.StdDev() / math.Sqrt(float64(s.N)) }

// Quantile is the q-quantile of the reservoir (NaN when empty).
func (s *Stat) Quantile(q float64) float64 {
	if s == nil || len(s.res) == 0 {
		return math.NaN()
	}
	v := slices.Clone(s.res)
	slices.Sort(v)
	i := int(math.Ceil(q*float64(len(v)))) - 1
	return v[min(max(i, 0), len(v)-1)]
}
