package audit

import (
	"math"
	"math/rand/v2"
	"testing"
)

func layers(widths ...int) [][][32]byte {
	var out [][][32]byte
	for l, w := range widths {
		var layer [][32]byte
		for i := range w {
			layer = append(layer, [32]byte{byte(l + 1), byte(i + 1)})
		}
		out = append(out, layer)
	}
	return out
}

func TestPlanCrossesEveryMixEnough(t *testing.T) {
	for _, tt := range []struct {
		name   string
		widths []int
	}{
		{"3 layers of 2 (full factorial)", []int{2, 2, 2}},
		{"3 layers of 3 (full factorial)", []int{3, 3, 3}},
		{"3 layers of 5 (balanced Latin plan)", []int{5, 5, 5}},
		{"uneven layers of 4, 6, 5 (shuffled rounds)", []int{4, 6, 5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ls := layers(tt.widths...)
			paths, err := Plan(ls, 4, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			count := map[[32]byte]int{}
			for _, p := range paths {
				if len(p) != len(ls) {
					t.Fatalf("path %v has %d hops", p, len(p))
				}
				for i, m := range p {
					if m[0] != byte(i+1) {
						t.Fatalf("path %v leaves the layer order", p)
					}
					count[m]++
				}
			}
			for _, l := range ls {
				for _, m := range l {
					if count[m] < 4 {
						t.Errorf("mix %x crossed by %d paths, want ≥ 4", m[:2], count[m])
					}
				}
			}
		})
	}
	if _, err := Plan(layers(2, 0), 1, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Error("a plan over an empty layer was made")
	}
}

func TestInferBlamesTheLossyMixNotItsNeighbours(t *testing.T) {
	ls := layers(2, 2, 2)
	paths, _ := Plan(ls, 4, rand.New(rand.NewPCG(3, 4)))
	bad := ls[1][0]
	var outs []Outcome
	for _, p := range paths {
		o := Outcome{Path: p, Sent: 1000, Returned: 1000}
		for _, m := range p {
			if m == bad {
				o.Returned = 700
			}
		}
		outs = append(outs, o)
	}
	est := Infer(outs)
	for m, v := range est {
		want := 1.0
		if m == bad {
			want = 0.7
		}
		if math.Abs(v-want) > 0.001 {
			t.Errorf("mix %x: inferred %.3f, want %.1f", m[:2], v, want)
		}
	}
}
