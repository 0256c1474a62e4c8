// Package audit holds the pure parts of the secret shopper's auditor
// (plugins/pay-shopper; docs/SPEC.md, "Accounting: the secret shopper"):
// probe path plans that let each mix's loss be told from its neighbours',
// and the inference of per-mix delivery from path outcomes. A provider
// that audits (host/node) and the plugin's tests use them.
package audit

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Path is one probe route: one mix per layer, layer 0 first.
type Path [][32]byte

// Plan draws paths so that every mix is crossed by at least perMix paths,
// each time beside other neighbours, so a mix's loss is separable from
// theirs (it is the one factor common to paths that otherwise differ).
//
// When the layers' widths multiply to at most 64, the plan is every
// combination (one mix per layer), repeated until each mix is crossed
// perMix times, in random order. Otherwise, when every layer has the same
// prime width w and there are at most w
// layers, the plan is balanced: each layer's mixes are relabelled at
// random, and in round k path j takes mix (j + k·i) mod w of layer i, so
// over w rounds every mix meets every mix of every other layer exactly
// once, and no honest mix shares more paths with a lossy neighbour than
// its layer-mates do. Otherwise each round shuffles every layer afresh.
// Rounds are perMix, rounded up to a multiple of w for a balanced plan.
func Plan(layers [][][32]byte, perMix int, r *rand.Rand) ([]Path, error) {
	width := 0
	same := true
	for i, l := range layers {
		if len(l) == 0 {
			return nil, fmt.Errorf("pay-shopper: layer %d has no mixes", i)
		}
		if i > 0 && len(l) != width {
			same = false
		}
		width = max(width, len(l))
	}
	if perMix < 1 {
		return nil, errors.New("pay-shopper: perMix must be at least 1")
	}
	shuffled := func() [][][32]byte {
		perms := make([][][32]byte, len(layers))
		for i, l := range layers {
			perms[i] = slices.Clone(l)
			r.Shuffle(len(perms[i]), func(a, b int) { perms[i][a], perms[i][b] = perms[i][b], perms[i][a] })
		}
		return perms
	}
	var out []Path
	// Few enough combinations: take them all (a full factorial plan), so
	// every mix meets every combination of the other layers' mixes alike.
	combos := 1
	for _, l := range layers {
		combos *= len(l)
		if combos > maxFactorial {
			break
		}
	}
	if combos <= maxFactorial {
		per := combos / width // the fewest paths of one set through a mix
		for range (perMix + per - 1) / per {
			for c := range combos {
				p := make(Path, len(layers))
				rest := c
				for i, l := range layers {
					p[i] = l[rest%len(l)]
					rest /= len(l)
				}
				out = append(out, p)
			}
		}
		r.Shuffle(len(out), func(a, b int) { out[a], out[b] = out[b], out[a] })
		return out, nil
	}
	if same && prime(width) && len(layers) <= width {
		rounds := (perMix + width - 1) / width * width
		perms := shuffled()
		for k := range rounds {
			if k%width == 0 && k > 0 {
				perms = shuffled()
			}
			for j := range width {
				p := make(Path, len(layers))
				for i := range layers {
					p[i] = perms[i][(j+(k%width)*i)%width]
				}
				out = append(out, p)
			}
		}
		return out, nil
	}
	for range perMix {
		perms := shuffled()
		for j := range width {
			p := make(Path, len(layers))
			for i := range layers {
				p[i] = perms[i][j%len(perms[i])]
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// maxFactorial bounds the paths of a full factorial plan.
const maxFactorial = 64

func prime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// Outcome is how probes on one path fared.
type Outcome struct {
	Path     Path
	Sent     uint64
	Returned uint64
}

// Infer estimates each mix's delivery ratio from path outcomes, under the
// model that a probe survives a path with the product of its mixes'
// ratios. That model only fixes ratios up to a factor per layer (1/c in
// one layer, c in another fit as well), so the estimate takes the best mix
// of each layer as the yardstick: it is the loss of a mix relative to the
// best of its layer. Starting from 1, each mix's ratio becomes the probes
// returned on its paths divided by what its paths would return if it
// alone lost nothing (its neighbours' current estimates), then each layer
// is scaled so its best mix is 1; repeated until it settles. A mix that
// shares many paths with a lossy neighbour is not blamed for it.
func Infer(outs []Outcome) map[[32]byte]float64 {
	p := map[[32]byte]float64{}
	layerOf := map[[32]byte]int{}
	for _, o := range outs {
		for i, m := range o.Path {
			p[m] = 1
			layerOf[m] = i
		}
	}
	mixes := make([][32]byte, 0, len(p))
	for m := range p {
		mixes = append(mixes, m)
	}
	slices.SortFunc(mixes, func(a, b [32]byte) int { return Compare(a[:], b[:]) })
	for range 500 {
		delta := 0.0
		// One mix at a time, each against its neighbours' latest
		// estimates (updating all at once oscillates).
		for _, m := range mixes {
			var num, den float64
			for _, o := range outs {
				if !slices.Contains(o.Path, m) {
					continue
				}
				others := 1.0
				for _, x := range o.Path {
					if x != m {
						others *= p[x]
					}
				}
				num += float64(o.Returned)
				den += float64(o.Sent) * others
			}
			v := 0.0
			if den > 0 {
				v = num / den
			}
			delta = max(delta, math.Abs(v-p[m]))
			p[m] = v
		}
		best := map[int]float64{}
		for m, v := range p {
			best[layerOf[m]] = max(best[layerOf[m]], v)
		}
		for m, v := range p {
			if b := best[layerOf[m]]; b > 0 {
				p[m] = v / b
			}
		}
		if delta < 1e-9 {
			break
		}
	}
	return p
}

// Compare orders node IDs.
func Compare(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return len(a) - len(b)
}
