package shopper

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/sottonet/sotto/core/cover"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/interfaces"
)

// Path is one probe route: one mix per layer, layer 0 first.
type Path [][32]byte

// Plan draws paths so that every mix is crossed by at least perMix paths,
// each time beside other neighbours, so a mix's loss is separable from
// theirs (it is the one factor common to paths that otherwise differ).
//
// When every layer has the same prime width w and there are at most w
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
	slices.SortFunc(mixes, func(a, b [32]byte) int { return compare(a[:], b[:]) })
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

// Report turns an epoch's outcomes into the auditor's work records: per
// mix, probes routed through it (WorkProbeSent) and the inferred number
// that crossed it (WorkProbed), in ascending node order.
func Report(outs []Outcome) []interfaces.WorkRecord {
	est := Infer(outs)
	sent := map[[32]byte]uint64{}
	for _, o := range outs {
		for _, m := range o.Path {
			sent[m] += o.Sent
		}
	}
	ids := make([][32]byte, 0, len(sent))
	for id := range sent {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b [32]byte) int { return compare(a[:], b[:]) })
	var recs []interfaces.WorkRecord
	for _, id := range ids {
		s := sent[id]
		recs = append(recs,
			interfaces.WorkRecord{Node: id, Kind: interfaces.WorkProbeSent, Packets: s},
			interfaces.WorkRecord{Node: id, Kind: interfaces.WorkProbed, Packets: uint64(math.Round(float64(s) * est[id]))})
	}
	return recs
}

func compare(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return len(a) - len(b)
}

// BatchID names an auditor's report for an epoch: its node ID first (the
// ledger's reporter), then the epoch and a sequence number.
func BatchID(auditor [32]byte, epoch, seq uint64) []byte {
	b := binary.BigEndian.AppendUint64(append([]byte(nil), auditor[:]...), epoch)
	return binary.BigEndian.AppendUint64(b, seq)
}

// Schedule is an auditor's probe timing: exactly the loop stream of a
// client (core/cover with only the loop rate λL), so probes leave at the
// times a client's loops would.
type Schedule struct{ s *cover.Stream }

// NewSchedule draws probe gaps at rate loopRate (a client's λL) from r.
func NewSchedule(loopRate float64, r *rand.Rand) (*Schedule, error) {
	s, err := cover.NewStream(cover.Rates{Loop: loopRate}, r)
	if err != nil {
		return nil, err
	}
	return &Schedule{s: s}, nil
}

// Next is the gap before the next probe.
func (s *Schedule) Next() time.Duration {
	d, _ := s.s.Next()
	return d
}

// Hop is one node of a probe's Sphinx path with its epoch key.
type Hop struct {
	ID  [32]byte
	Key *sphinx.PublicKey
}

// ProbeIDLength is the length of a probe's ID at the start of its payload.
const ProbeIDLength = 16

// BuildProbe makes a probe: a Sphinx packet of g's size through hops (the
// chosen mixes, then the auditor's own provider, whose Recipient command
// names mailbox), each mix asked to hold it for delays[i] as a client's
// loop would. Its payload is the probe ID followed by random bytes, like
// a loop's sealed body to every node but the last.
func BuildProbe(rnd io.Reader, g *sphinx.Geometry, hops []Hop, delays []time.Duration, mailbox [sphinx.RecipientIDLength]byte, id [ProbeIDLength]byte) ([]byte, error) {
	if len(delays) != len(hops)-1 {
		return nil, fmt.Errorf("pay-shopper: %d delays for %d hops", len(delays), len(hops))
	}
	path := make([]sphinx.PathHop, len(hops))
	for i, h := range hops {
		path[i] = sphinx.PathHop{ID: h.ID, PublicKey: h.Key}
		if i == len(hops)-1 {
			path[i].Commands = []sphinx.Command{&sphinx.Recipient{ID: mailbox}}
		} else {
			path[i].Commands = []sphinx.Command{&sphinx.NodeDelay{Delay: uint32(delays[i] / time.Millisecond)}}
		}
	}
	payload := make([]byte, g.ForwardPayloadLength)
	copy(payload, id[:])
	if _, err := io.ReadFull(rnd, payload[ProbeIDLength:]); err != nil {
		return nil, err
	}
	return sphinx.NewPacket(rnd, g, path, payload)
}

// Auditor keeps one epoch's probes in flight and their outcomes.
type Auditor struct {
	ID      [32]byte
	pending map[[ProbeIDLength]byte]int // probe → path index
	outs    []Outcome
	seq     uint64
}

// NewAuditor starts an epoch's bookkeeping over paths.
func NewAuditor(id [32]byte, paths []Path) *Auditor {
	a := &Auditor{ID: id, pending: map[[ProbeIDLength]byte]int{}}
	for _, p := range paths {
		a.outs = append(a.outs, Outcome{Path: p})
	}
	return a
}

// Paths is how many paths the auditor probes.
func (a *Auditor) Paths() int { return len(a.outs) }

// Sent records probe id sent on path i.
func (a *Auditor) Sent(i int, id [ProbeIDLength]byte) {
	a.pending[id] = i
	a.outs[i].Sent++
}

// Returned records a payload that reached the auditor's mailbox; it
// reports whether it was a probe of this epoch not seen before (a
// replayed probe counts once).
func (a *Auditor) Returned(payload []byte) bool {
	if len(payload) < ProbeIDLength {
		return false
	}
	var id [ProbeIDLength]byte
	copy(id[:], payload)
	i, ok := a.pending[id]
	if !ok {
		return false
	}
	delete(a.pending, id)
	a.outs[i].Returned++
	return true
}

// Close ends the epoch: probes still pending are lost. It returns the
// report to hand the ledger.
func (a *Auditor) Close(epoch uint64) *interfaces.RecordWorkRequest {
	clear(a.pending)
	a.seq++
	return &interfaces.RecordWorkRequest{Epoch: epoch, BatchID: BatchID(a.ID, epoch, a.seq), Records: Report(a.outs)}
}
