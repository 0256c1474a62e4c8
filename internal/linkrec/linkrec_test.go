package linkrec

import (
	"math/rand/v2"
	"testing"
	"time"
)

// Frames cut anywhere across reads and writes are still recorded whole,
// with their length prefix.
func TestSplitterFindsFramesAcrossChunks(t *testing.T) {
	r := New()
	s := splitter{rec: r, dir: Down, stream: 1}
	bytes := []byte{0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0, 0, 0, 1, 'z'}
	now := time.Now()
	for _, cut := range [][]byte{bytes[:2], bytes[2:5], bytes[5:9], bytes[9:]} {
		s.feed(cut, now)
	}
	got := r.Frames()
	if len(got) != 3 || got[0].Size != 7 || got[1].Size != 4 || got[2].Size != 5 {
		t.Fatalf("frames %+v, want sizes 7, 4, 5", got)
	}
}

// The test rejects samples of different distributions and accepts (at 1%)
// two samples of one, most of the time.
func TestKolmogorovSmirnov(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	sample := func(n int, shift float64) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = rnd.NormFloat64() + shift
		}
		return s
	}
	rejected := 0
	for range 200 {
		if _, p := KolmogorovSmirnov(sample(50, 0), sample(50, 0)); p < 0.01 {
			rejected++
		}
	}
	if rejected > 8 {
		t.Fatalf("two samples of one distribution rejected %d times in 200 at 1%%", rejected)
	}
	if d, p := KolmogorovSmirnov(sample(50, 0), sample(50, 1.5)); p > 0.001 {
		t.Fatalf("samples one standard deviation and a half apart: d %.3f p %.4f", d, p)
	}
	if _, p := KolmogorovSmirnov([]float64{1, 1, 1}, []float64{1, 1, 1}); p != 1 {
		t.Fatalf("identical samples: p %v", p)
	}
}

func TestPerInterval(t *testing.T) {
	start := time.Unix(100, 0)
	fs := []Frame{{At: start, Size: 10}, {At: start.Add(150 * time.Millisecond), Size: 5, Dir: Up},
		{At: start.Add(999 * time.Millisecond), Size: 7}, {At: start.Add(-time.Millisecond), Size: 1000}}
	got := PerInterval(fs, start, 100*time.Millisecond, 10, nil)
	if got[0] != 10 || got[1] != 5 || got[9] != 7 {
		t.Fatalf("%v", got)
	}
	if up := PerInterval(fs, start, time.Second, 1, func(f Frame) bool { return f.Dir == Up }); up[0] != 5 {
		t.Fatalf("up %v", up)
	}
	if s := Sizes(fs, nil); len(s) != 4 || s[0] != 5 {
		t.Fatalf("sizes %v", s)
	}
}
