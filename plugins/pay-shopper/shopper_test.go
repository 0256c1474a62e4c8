package shopper

import (
	"context"
	"crypto/rand"
	"math"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/cover"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/accountingtest"
	"github.com/sottonet/sotto/interfaces/memkv"
)

func openOn(t *testing.T, kv interfaces.KV) *Ledger {
	t.Helper()
	l, err := Open(context.Background(), DefaultConfig, kv)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// kvOf remembers which KV each opened ledger lives on, for Reopen.
var (
	kvMu sync.Mutex
	kvOf = map[interfaces.Accounting]interfaces.KV{}
)

func openAcc(t *testing.T, kv interfaces.KV, grpc bool) interfaces.Accounting {
	var a interfaces.Accounting = openOn(t, kv)
	if grpc {
		a = accountingtest.OverGRPC(t, a)
	}
	kvMu.Lock()
	kvOf[a] = kv
	kvMu.Unlock()
	return a
}

func TestConformance(t *testing.T) {
	for _, grpc := range []bool{false, true} {
		name := "in process"
		if grpc {
			name = "over gRPC"
		}
		t.Run(name, func(t *testing.T) {
			accountingtest.Run(t, func(t *testing.T) interfaces.Accounting { return openAcc(t, memkv.New(), grpc) }, accountingtest.Options{
				Credential: func(*testing.T, interfaces.Accounting) []byte { return []byte("anything: users pay nothing") },
				Reopen: func(t *testing.T, a interfaces.Accounting) interfaces.Accounting {
					kvMu.Lock()
					kv := kvOf[a]
					kvMu.Unlock()
					return openAcc(t, kv, grpc)
				},
			})
		})
	}
}

// ksExp is the Kolmogorov–Smirnov statistic of xs against Exp(lambda).
func ksExp(xs []float64, lambda float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := float64(len(s))
	var d float64
	for i, x := range s {
		f := 1 - math.Exp(-lambda*x)
		d = max(d, math.Abs(f-float64(i)/n), math.Abs(float64(i+1)/n-f))
	}
	return d
}

// ks2 is the two-sample Kolmogorov–Smirnov statistic.
func ks2(a, b []float64) float64 {
	a, b = append([]float64(nil), a...), append([]float64(nil), b...)
	sort.Float64s(a)
	sort.Float64s(b)
	var i, j int
	var d float64
	for i < len(a) && j < len(b) {
		x := min(a[i], b[j])
		for i < len(a) && a[i] <= x {
			i++
		}
		for j < len(b) && b[j] <= x {
			j++
		}
		d = max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	return d
}

// ks2Crit is the two-sample critical value at α = 0.001.
func ks2Crit(n, m int) float64 {
	return 1.949 * math.Sqrt(float64(n+m)/float64(n*m))
}

// clientLoopGaps are the gaps between a client's loop packets, drawn from
// the client's own merged cover stream (core/cover, as client/ uses it).
func clientLoopGaps(rates cover.Rates, n int, seed uint64) []float64 {
	s, err := cover.NewStream(rates, mrand.New(mrand.NewPCG(seed, 1)))
	if err != nil {
		panic(err)
	}
	var out []float64
	var acc time.Duration
	for len(out) < n {
		d, k := s.Next()
		acc += d
		if k == cover.Loop {
			out = append(out, acc.Seconds())
			acc = 0
		}
	}
	return out
}

func TestProbeTimingIsALoopStream(t *testing.T) {
	rates := cover.Rates{Payload: 2, Loop: 0.5, Drop: 0.5}
	const n = 5000
	loops := clientLoopGaps(rates, n, 7)
	sch, err := NewSchedule(rates.Loop, mrand.New(mrand.NewPCG(99, 2)))
	if err != nil {
		t.Fatal(err)
	}
	probes := make([]float64, n)
	for i := range probes {
		probes[i] = sch.Next().Seconds()
	}
	crit := ks2Crit(n, n)
	if d := ks2(probes, loops); d > crit {
		t.Errorf("probe gaps vs a client's loop gaps: KS %.4f > %.4f", d, crit)
	}
	if d := ksExp(probes, rates.Loop); d > 1.949/math.Sqrt(n) {
		t.Errorf("probe gaps vs Exp(λL): KS %.4f > %.4f", d, 1.949/math.Sqrt(n))
	}
	// The test can fail: probes at a fixed interval of the same mean, or
	// Poisson at the client's total rate, are told apart.
	fixed := make([]float64, n)
	for i := range fixed {
		fixed[i] = 1 / rates.Loop
	}
	if d := ks2(fixed, loops); d <= crit {
		t.Errorf("fixed-interval probes pass as loops: KS %.4f ≤ %.4f", d, crit)
	}
	fast, _ := NewSchedule(rates.Total(), mrand.New(mrand.NewPCG(5, 5)))
	for i := range fixed {
		fixed[i] = fast.Next().Seconds()
	}
	if d := ks2(fixed, loops); d <= crit {
		t.Errorf("probes at the total rate pass as loops: KS %.4f ≤ %.4f", d, crit)
	}
	t.Logf("%d gaps: probe vs client loop KS %.4f (critical %.4f at α=0.001)", n, ks2(probes, loops), crit)
}

// net is a small mixnet of real Sphinx nodes: layers of mixes, each
// unwrapping probes with its own key and forwarding them (or, for a
// dropper, dropping a fraction while it would count them all as
// forwarded), and a provider that hands payloads to its mailbox.
type net struct {
	g       *sphinx.Geometry
	layers  [][][32]byte
	keys    map[[32]byte]*sphinx.PrivateKey
	drop    map[[32]byte]float64
	r       *mrand.Rand
	forward map[[32]byte]uint64 // what each mix would report as forwarded
	unw     map[[32]byte]*sphinx.Unwrapper
	res     sphinx.Result
}

func newNet(t testing.TB, layers, width int, seed uint64) *net {
	t.Helper()
	n := &net{g: sphinx.DefaultGeometry(), keys: map[[32]byte]*sphinx.PrivateKey{}, drop: map[[32]byte]float64{},
		r: mrand.New(mrand.NewPCG(seed, 3)), forward: map[[32]byte]uint64{}, unw: map[[32]byte]*sphinx.Unwrapper{}}
	for l := range layers {
		var layer [][32]byte
		for w := range width {
			id := [32]byte{byte(l + 1), byte(w + 1)}
			layer = append(layer, id)
			n.addKey(t, id)
		}
		n.layers = append(n.layers, layer)
	}
	return n
}

func (n *net) addKey(t testing.TB, id [32]byte) {
	k, err := sphinx.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n.keys[id] = k
	n.unw[id] = sphinx.NewUnwrapper(n.g, k)
}

// route carries pkt from its first hop; it returns the payload if it
// reached its final hop.
func (n *net) route(t *testing.T, first [32]byte, pkt []byte) []byte {
	at := first
	for {
		res := &n.res
		if err := n.unw[at].Unwrap(pkt, res); err != nil {
			t.Fatalf("unwrap at %x: %v", at[:2], err)
		}
		if res.Commands.NextHop == nil {
			return res.Payload
		}
		n.forward[at]++ // self-reported: a dropper reports full work
		if n.r.Float64() < n.drop[at] {
			return nil
		}
		at = res.Commands.NextHop.ID
	}
}

// probeEpoch has each auditor send probes over a fresh plan and report to
// the ledger; provider is each auditor's own provider (its mailbox).
func (n *net) probeEpoch(t *testing.T, l *Ledger, epoch uint64, auditors [][32]byte, probes int) {
	t.Helper()
	for _, aid := range auditors {
		paths, err := Plan(n.layers, 4, n.r)
		if err != nil {
			t.Fatal(err)
		}
		a := NewAuditor(aid, paths)
		for i := range probes {
			pi := i % a.Paths()
			hops := make([]Hop, 0, len(paths[pi])+1)
			for _, m := range paths[pi] {
				hops = append(hops, Hop{ID: m, Key: n.keys[m].PublicKey()})
			}
			hops = append(hops, Hop{ID: aid, Key: n.keys[aid].PublicKey()})
			var id [ProbeIDLength]byte
			rand.Read(id[:])
			pkt, err := BuildProbe(rand.Reader, n.g, hops, make([]time.Duration, len(hops)-1), [sphinx.RecipientIDLength]byte{9}, id)
			if err != nil {
				t.Fatal(err)
			}
			if len(pkt) != n.g.PacketLength {
				t.Fatalf("probe is %d bytes, packets are %d", len(pkt), n.g.PacketLength)
			}
			a.Sent(pi, id)
			if p := n.route(t, hops[0].ID, pkt); p != nil {
				if !a.Returned(p) {
					t.Fatal("a returned probe was not recognised")
				}
				if a.Returned(p) {
					t.Fatal("a probe that came back twice counted twice")
				}
			}
		}
		if _, err := l.RecordWork(context.Background(), a.Close(epoch)); err != nil {
			t.Fatal(err)
		}
	}
}

// DetectEpochs is how many epochs of probing the dropping mix needs to
// score below every honest mix: one, at 3 auditors × 360 probes per epoch
// over 3 layers of 3 mixes (each mix crossed by ~120 probes per auditor).
const DetectEpochs = 1

func TestDroppingMixScoresBelowEveryHonestMix(t *testing.T) {
	for seed := range uint64(8) {
		n := newNet(t, 3, 3, seed)
		dropper := n.layers[1][seed%3]
		n.drop[dropper] = 0.3
		auditors := [][32]byte{{0xa1}, {0xa2}, {0xa3}}
		for _, a := range auditors {
			n.addKey(t, a)
		}
		kv := memkv.New()
		l := openOn(t, kv)
		for e := uint64(1); e <= DetectEpochs; e++ {
			n.probeEpoch(t, l, e, auditors, 360)
		}
		sc, err := l.Scores(context.Background(), DetectEpochs)
		if err != nil {
			t.Fatal(err)
		}
		earn := earningsOf(t, l, DetectEpochs)
		for id, s := range sc {
			if id == dropper {
				continue
			}
			if s <= sc[dropper] {
				t.Errorf("seed %d: honest mix %x scores %.3f, not above the dropper's %.3f", seed, id[:2], s, sc[dropper])
			}
			if earn[id] <= earn[dropper] {
				t.Errorf("seed %d: honest mix %x earns %d, not more than the dropper's %d", seed, id[:2], earn[id], earn[dropper])
			}
		}
		if n.forward[dropper] == 0 {
			t.Fatal("the dropper forwarded nothing")
		}
		lowest := 1.0
		for id, s := range sc {
			if id != dropper {
				lowest = min(lowest, s)
			}
		}
		t.Logf("seed %d: dropper %x scores %.3f, earns %d, self-reports %d forwarded; lowest honest score %.3f", seed, dropper[:2], sc[dropper], earn[dropper], n.forward[dropper], lowest)
	}
}

func earningsOf(t *testing.T, l interfaces.Accounting, e uint64) map[interfaces.NodeID]uint64 {
	t.Helper()
	r, err := l.Earnings(context.Background(), &interfaces.EarningsRequest{Epoch: e})
	if err != nil {
		t.Fatal(err)
	}
	out := map[interfaces.NodeID]uint64{}
	for _, n := range r.Nodes {
		out[n.Node] = n.Amount
	}
	return out
}

func TestOneLyingAuditorIsOutvoted(t *testing.T) {
	n := newNet(t, 3, 3, 42)
	dropper := n.layers[2][0]
	n.drop[dropper] = 0.3
	honest := [][32]byte{{0xa1}, {0xa2}}
	for _, a := range honest {
		n.addKey(t, a)
	}
	l := New(DefaultConfig)
	n.probeEpoch(t, l, 1, honest, 360)
	// The liar vouches for the dropper and slanders an honest mix.
	victim := n.layers[0][0]
	liar := [32]byte{0xee}
	lie := &interfaces.RecordWorkRequest{Epoch: 1, BatchID: BatchID(liar, 1, 1), Records: []interfaces.WorkRecord{
		{Node: dropper, Kind: interfaces.WorkProbeSent, Packets: 100}, {Node: dropper, Kind: interfaces.WorkProbed, Packets: 100},
		{Node: victim, Kind: interfaces.WorkProbeSent, Packets: 100}, {Node: victim, Kind: interfaces.WorkProbed, Packets: 0},
	}}
	if _, err := l.RecordWork(context.Background(), lie); err != nil {
		t.Fatal(err)
	}
	sc, _ := l.Scores(context.Background(), 1)
	earn := earningsOf(t, l, 1)
	if sc[dropper] >= DefaultConfig.Threshold || earn[dropper] != 0 {
		t.Errorf("with one liar of three the dropper scores %.3f and earns %d", sc[dropper], earn[dropper])
	}
	if sc[victim] < DefaultConfig.Threshold || earn[victim] == 0 {
		t.Errorf("with one liar of three the slandered honest mix scores %.3f and earns %d", sc[victim], earn[victim])
	}
}

func TestRepeatedReportCountsOnceAndSurvivesRestart(t *testing.T) {
	kv := memkv.New()
	l := openOn(t, kv)
	n := newNet(t, 3, 2, 5)
	a := [32]byte{0xa1}
	n.addKey(t, a)
	n.probeEpoch(t, l, 4, [][32]byte{a}, 60)
	before := earningsOf(t, l, 4)
	sc0, _ := l.Scores(context.Background(), 4)
	// The same report again (a retry after a lost answer).
	paths, _ := Plan(n.layers, 1, n.r)
	rep := NewAuditor(a, paths)
	for i := range 32 {
		rep.Sent(i%rep.Paths(), [ProbeIDLength]byte{byte(i)})
	}
	req := rep.Close(5)
	for range 3 {
		if _, err := l.RecordWork(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	l2 := openOn(t, kv) // a plugin restart on the same KV
	for _, e := range []uint64{4} {
		after := earningsOf(t, l2, e)
		for id, v := range before {
			if after[id] != v {
				t.Errorf("after a restart node %x earns %d in epoch %d, was %d", id[:2], after[id], e, v)
			}
		}
	}
	sc1, _ := l2.Scores(context.Background(), 4)
	if len(sc1) != len(sc0) || len(sc0) == 0 {
		t.Errorf("scores before a restart %v, after %v", sc0, sc1)
	}
	if _, err := l2.RecordWork(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r, _ := l2.Earnings(context.Background(), &interfaces.EarningsRequest{Epoch: 5})
	for _, ne := range r.Nodes {
		// 32 probes over the 8 paths of 2-wide layers: each mix saw 16, none came back.
		_, _, st, _ := l2.load(context.Background(), 5)
		for _, m := range st {
			for _, c := range m {
				if c.Sent != 16 {
					t.Fatalf("a report sent 4 times (once after a restart) counted %d probes sent, want 16", c.Sent)
				}
			}
		}
		if ne.Probed != 0 {
			t.Errorf("probed %d for probes that never came back", ne.Probed)
		}
	}
}

func TestInferSeparatesNeighbours(t *testing.T) {
	a, b, c, d := [32]byte{1}, [32]byte{2}, [32]byte{3}, [32]byte{4}
	outs := []Outcome{
		{Path: Path{a, c}, Sent: 1000, Returned: 700},  // a drops 30%
		{Path: Path{a, d}, Sent: 1000, Returned: 700},  //
		{Path: Path{b, c}, Sent: 1000, Returned: 1000}, //
		{Path: Path{b, d}, Sent: 1000, Returned: 1000}, //
	}
	p := Infer(outs)
	if math.Abs(p[a]-0.7) > 0.01 || p[b] < 0.99 || p[c] < 0.99 || p[d] < 0.99 {
		t.Errorf("inferred %v, want a 0.7 and the others 1", p)
	}
}

func TestSplit(t *testing.T) {
	a, b, c := interfaces.NodeID{1}, interfaces.NodeID{2}, interfaces.NodeID{3}
	got := Split(1000, 0.9, map[interfaces.NodeID]float64{a: 1, b: 1, c: 0.7})
	if got[a] != 500 || got[b] != 500 || got[c] != 0 {
		t.Errorf("Split = %v", got)
	}
	if got := Split(1000, 0.9, map[interfaces.NodeID]float64{a: 0.5}); got[a] != 0 {
		t.Errorf("a node below the threshold alone earns %d", got[a])
	}
}

func TestParseConfig(t *testing.T) {
	for _, tt := range []struct {
		raw string
		ok  bool
	}{{"", true}, {`{"budget": 5}`, true}, {`{"threshold": 1.5}`, false}, {`{"nope": 1}`, false}, {`{`, false}} {
		_, err := ParseConfig([]byte(tt.raw))
		if (err == nil) != tt.ok {
			t.Errorf("ParseConfig(%q) = %v", tt.raw, err)
		}
	}
}

// FuzzReturned: whatever reaches the auditor's mailbox is classified
// without a panic, and only a pending probe counts, once.
func FuzzReturned(f *testing.F) {
	f.Add([]byte{1, 2, 3})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, payload []byte) {
		a := NewAuditor([32]byte{1}, []Path{{{2}}})
		a.Sent(0, [ProbeIDLength]byte{})
		first := a.Returned(payload)
		if first && a.Returned(payload) {
			t.Fatal("a probe counted twice")
		}
		if first != (len(payload) >= ProbeIDLength && [ProbeIDLength]byte(payload[:ProbeIDLength]) == [ProbeIDLength]byte{}) {
			t.Fatalf("Returned(%x) = %v", payload, first)
		}
	})
}
