package sim

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"
)

// mixTag follows one tagged input through one honest mix's outputs: the
// adversary's probability that each later departure is the tagged packet.
// With m the mass still in the pool, a departure from a pool of n takes
// m/n (every member equally likely, by memorylessness).
type mixTag struct {
	id      uint32
	m, h    float64
	pTrue   float64
	coll    float64 // Σ p², the posterior's collision probability
	k, rank int32
	n0      int32
}

// depart accounts one departure from a pool of n; tagged says whether it
// is the tagged packet. It reports when the tag is finished: the tagged
// packet has left and the mass left in the pool is negligible.
func (t *mixTag) depart(n int32, tagged bool) bool {
	pk := t.m / float64(n)
	if pk > 0 {
		t.h -= pk * math.Log2(pk)
		t.coll += pk * pk
	}
	t.m -= pk
	t.k++
	if tagged {
		t.rank, t.pTrue = t.k, pk
	}
	return t.rank > 0 && t.m < 1e-9
}

// MixResult is the single-mix analysis over all honest mixes.
type MixResult struct {
	H     *Stat   // entropy over the mix's outputs, bits
	PTrue *Stat   // the adversary's probability on the true output
	Coll  *Stat   // Σ p²: equals PTrue on average when the posterior is calibrated
	Rank  *Stat   // the tagged packet's position among later departures
	Ranks []int64 // Ranks[k] counts tags that left k-th (index 0 unused)
	Pool  *Stat   // pool size the tagged packet found, itself included
}

func (m *MixResult) record(t *mixTag) {
	m.H.add(t.h)
	m.PTrue.add(t.pTrue)
	m.Coll.add(t.coll)
	m.Rank.add(float64(t.rank))
	m.Pool.add(float64(t.n0))
	if int(t.rank) >= len(m.Ranks) {
		m.Ranks = append(m.Ranks, make([]int64, int(t.rank)+1-len(m.Ranks))...)
	}
	m.Ranks[t.rank]++
}

// SenderResult is the sender analysis over all targets.
type SenderResult struct {
	N                            int64
	H, PTrue, Eps, Support, Coll *Stat
	Emission, Trunc, Auditors    *Stat
	Identified                   int64 // targets whose true sender had posterior > 1/2
	MaxTrunc                     float64
}

func (r *SenderResult) record(s SenderSample) {
	r.N++
	r.H.add(s.H)
	r.PTrue.add(s.PTrue)
	r.Coll.add(s.Coll)
	r.Eps.add(s.Eps)
	r.Support.add(float64(s.Support))
	r.Emission.add(s.Emission)
	r.Trunc.add(s.Trunc)
	r.Auditors.add(s.Auditors)
	r.MaxTrunc = max(r.MaxTrunc, s.Trunc)
	if s.PTrue > 0.5 {
		r.Identified++
	}
}

// Result is what one run measured, beside the closed forms.
type Result struct {
	Config       Config
	Mixes        int
	Providers    int
	PacketLength int
	Fragments    int // fragments per message

	BuildTime, WallTime time.Duration
	Events              uint64
	PeakHeap            uint64 // bytes, sampled every 2^20 events

	Sent        [numKinds]int64 // packets emitted in the measured time, by kind
	LinkPackets int64           // link traversals in the measured time
	Messages    int64

	HopMix, HopProvider *Stat // per-hop delay, s
	EndToEnd            *Stat // client packets: sender to last hop, s
	MessageLatency      *Stat // message created to last fragment stored, s
	QueueWait           *Stat // message created to its first fragment sent, s

	PoolMix, PoolGateway     float64 // time-averaged pool size, mean over nodes
	LambdaMix, LambdaGateway float64 // pool arrivals per second, mean over nodes

	Sender SenderResult
	Mix    MixResult

	Analytic Analytic
}

func newResult(c *Config, s *simulation) *Result {
	r := rand.New(rand.NewPCG(c.Seed, 10))
	st := func(n int) *Stat { return newStat(r, n) }
	return &Result{
		Config: *c, Mixes: s.net.mixes, Providers: len(s.net.nodes) - s.net.mixes,
		PacketLength: s.topo.Geometry.PacketLength, Fragments: int(s.nfrag),
		HopMix: st(0), HopProvider: st(0), EndToEnd: st(100000), MessageLatency: st(20000), QueueWait: st(0),
		Sender:   SenderResult{H: st(0), PTrue: st(0), Coll: st(0), Eps: st(10000), Support: st(0), Emission: st(0), Trunc: st(0), Auditors: st(0)},
		Mix:      MixResult{H: st(0), PTrue: st(0), Coll: st(0), Rank: st(0), Pool: st(0)},
		Analytic: NewAnalytic(*c),
	}
}

func (r *Result) finish(s *simulation) {
	t := float64(s.end-s.warm) / 1e9
	if s.now < s.end {
		t = float64(s.now-s.warm) / 1e9
	}
	if t <= 0 {
		return
	}
	var pm, pg, lm, lg float64
	for i := range s.nodes {
		n := &s.nodes[i]
		if i < s.net.mixes {
			pm += n.area / t
			lm += float64(n.arrivals) / t
		} else {
			pg += n.area / t
			lg += float64(n.arrivals) / t
		}
	}
	r.PoolMix, r.LambdaMix = pm/float64(r.Mixes), lm/float64(r.Mixes)
	r.PoolGateway, r.LambdaGateway = pg/float64(r.Providers), lg/float64(r.Providers)
}

// CoverShare is the measured share of client packets that carried no real
// fragment.
func (r *Result) CoverShare() float64 {
	var all int64
	for _, k := range []Kind{Fragment, Decoy, Loop, Drop} {
		all += r.Sent[k]
	}
	return 1 - float64(r.Sent[Fragment])/float64(all)
}

// LinksPerFragment is the measured link traversals per real fragment.
func (r *Result) LinksPerFragment() float64 {
	return float64(r.LinkPackets) / float64(r.Sent[Fragment])
}

// EpsQuantile is the q-quantile of ε over targets: with δ = 1-q, a
// fraction 1-δ of targets had ln(N·P(true sender)) ≤ it.
func (r *Result) EpsQuantile(q float64) float64 { return r.Sender.Eps.Quantile(q) }

// Write prints a human summary of r.
func (r *Result) Write(w io.Writer) {
	c, a := &r.Config, &r.Analytic
	pct := func(m, want float64) string { return fmt.Sprintf("%+.2f%%", 100*(m-want)/want) }
	fmt.Fprintf(w, "network     %d layers × %d mixes, %d providers, %d clients; %d-byte packets, %d fragment(s)/message\n",
		c.Layers, c.MixesPerLayer, r.Providers, c.Clients, r.PacketLength, r.Fragments)
	fmt.Fprintf(w, "rates       λP %g λL %g λD %g λM %g /s, μ %g /s, messages %g /client/s; corrupt mixes %g, providers %g\n",
		c.LambdaP, c.LambdaL, c.LambdaD, c.LambdaM, c.Mu, c.MessageRate, c.CorruptMixes, c.CorruptProviders)
	fmt.Fprintf(w, "run         %v simulated (+%v warm-up), %d events in %v (%.2f M events/s), build %v, peak heap %.1f MiB\n",
		c.Duration, c.Warmup, r.Events, r.WallTime.Round(time.Millisecond),
		float64(r.Events)/r.WallTime.Seconds()/1e6, r.BuildTime.Round(time.Millisecond), float64(r.PeakHeap)/(1<<20))
	fmt.Fprintf(w, "latency     per hop: mix %.4f s, provider %.4f s (analytic %.4f s: %s, %s)\n",
		r.HopMix.Mean(), r.HopProvider.Mean(), a.HopMean, pct(r.HopMix.Mean(), a.HopMean), pct(r.HopProvider.Mean(), a.HopMean))
	fmt.Fprintf(w, "            end to end: mean %.4f s (analytic %.4f s: %s), p50 %.3f s (Erlang %.3f), p99 %.3f s (Erlang %.3f)\n",
		r.EndToEnd.Mean(), a.EndToEndMean, pct(r.EndToEnd.Mean(), a.EndToEndMean),
		r.EndToEnd.Quantile(0.5), a.EndToEndP50, r.EndToEnd.Quantile(0.99), a.EndToEndP99)
	fmt.Fprintf(w, "            message: mean %.3f s, p99 %.3f s (queue wait mean %.3f s, M/M/1 %.3f s; censored at the run's end)\n",
		r.MessageLatency.Mean(), r.MessageLatency.Quantile(0.99), r.QueueWait.Mean(), a.QueueWait)
	fmt.Fprintf(w, "pools       mix: λ %.1f /s (analytic %.1f), mean pool %.2f (λ/μ %.2f); gateway: λ %.1f /s, pool %.2f (λ/μ %.2f)\n",
		r.LambdaMix, a.LambdaMix, r.PoolMix, r.LambdaMix/c.Mu, r.LambdaGateway, r.PoolGateway, r.LambdaGateway/c.Mu)
	fmt.Fprintf(w, "mix         output entropy %.3f bits over %d tags (pool-averaged closed form %.3f; rank entropy bound %.3f), P(true output) %.3f\n",
		r.Mix.H.Mean(), r.Mix.H.N, PoolPosteriorEntropy(r.LambdaMix/c.Mu), GeometricEntropy(c.Mu/(r.LambdaMix+c.Mu)), r.Mix.PTrue.Mean())
	fmt.Fprintf(w, "sender      %d targets: entropy %.3f bits (± %.3f; max log2 N = %.2f), P(true) %.4f, identified %d, ε median %.2f p95 %.2f, support %.0f clients\n",
		r.Sender.N, r.Sender.H.Mean(), r.Sender.H.StdErr(), math.Log2(float64(c.Clients)), r.Sender.PTrue.Mean(),
		r.Sender.Identified, r.EpsQuantile(0.5), r.EpsQuantile(0.95), r.Sender.Support.Mean())
	fmt.Fprintf(w, "            mass renormalised from emissions %.2e mean, from auditors %.2e; truncation error %.1e max\n",
		r.Sender.Emission.Mean(), r.Sender.Auditors.Mean(), r.Sender.MaxTrunc)
	fmt.Fprintf(w, "overhead    cover share %.3f (analytic %.3f); link packets per real fragment %.2f (analytic %.2f)\n",
		r.CoverShare(), a.CoverShare, r.LinksPerFragment(), a.LinksPerFragment)
	fmt.Fprintf(w, "sent        ")
	for k := range numKinds {
		fmt.Fprintf(w, "%s %d  ", k, r.Sent[k])
	}
	fmt.Fprintln(w)
}
