package cover

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestStreamGapsAreOnePoissonProcessOfTheSummedRate(t *testing.T) {
	rates := Rates{Payload: 2, Loop: 1, Drop: 0.5}
	s, err := NewStream(rates, rand.New(rand.NewPCG(7, 11)))
	if err != nil {
		t.Fatal(err)
	}
	const n = 30000
	gaps := make([]float64, n)
	counts := map[Kind]int{}
	for i := range gaps {
		g, k := s.Next()
		gaps[i] = g.Seconds()
		counts[k]++
	}
	slices.Sort(gaps)
	lambda := rates.Total()
	var d float64
	for i, x := range gaps {
		f := 1 - math.Exp(-lambda*x)
		d = max(d, math.Abs(float64(i+1)/n-f), math.Abs(f-float64(i)/n))
	}
	if crit := 1.95 / math.Sqrt(n); d > crit { // α = 0.001
		t.Fatalf("KS statistic %.4f > %.4f: gaps do not fit Exp(%v)", d, crit, lambda)
	}
	for _, c := range []struct {
		k    Kind
		rate float64
	}{{Payload, rates.Payload}, {Loop, rates.Loop}, {Drop, rates.Drop}} {
		p := c.rate / lambda
		want := p * n
		sd := math.Sqrt(n * p * (1 - p))
		if got := float64(counts[c.k]); math.Abs(got-want) > 4*sd {
			t.Errorf("%v slots: %v, want %.0f ± %.0f", c.k, got, want, 4*sd)
		}
	}
}

func TestStreamWithOnlyLoopsSendsOnlyLoops(t *testing.T) {
	s, err := NewStream(Rates{Loop: 3}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if _, k := s.Next(); k != Loop {
			t.Fatalf("got %v slot from a loop-only stream", k)
		}
	}
}

func TestRatesValidate(t *testing.T) {
	tests := []struct {
		name  string
		rates Rates
		ok    bool
	}{
		{"usual client rates are valid", Rates{2, 1, 1}, true},
		{"a mix with loops only is valid", Rates{Loop: 1}, true},
		{"all zero is refused", Rates{}, false},
		{"a negative rate is refused", Rates{1, -1, 1}, false},
		{"NaN is refused", Rates{math.NaN(), 1, 1}, false},
		{"infinity is refused", Rates{1, math.Inf(1), 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rates.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if _, err := NewStream(Rates{Loop: 1}, nil); err == nil {
		t.Error("nil random source accepted")
	}
}
