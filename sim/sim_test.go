package sim

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// run runs c and fails the test on an error.
func run(t *testing.T, c Config) *Result {
	t.Helper()
	r, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// quiet is a Config with both anonymity analyses off: for tests of
// latency and traffic only.
func quiet(c Config) Config {
	c.TargetRate, c.MixTagRate = -1, -1
	return c
}

func TestLatencyMatchesTheClosedForm(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"three layers at the demo's μ, delays cut to milliseconds",
			Config{Layers: 3, Mu: 10, Clients: 100, Duration: 5 * time.Minute}},
		{"one layer with long delays",
			Config{Layers: 1, Mu: 1, Clients: 100, Duration: 20 * time.Minute}},
		{"six layers, full-precision delays",
			Config{Layers: 6, Mu: 20, Clients: 100, Duration: 3 * time.Minute, NoQuantize: true}},
		{"fast mixing where the millisecond cut matters (μ = 200: 10% of the mean)",
			Config{Layers: 3, Mu: 200, Clients: 100, Duration: 2 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Seed = 7
			r := run(t, quiet(tt.cfg))
			a := r.Analytic
			for _, c := range []struct {
				what      string
				got, want float64
				n         int64
			}{
				{"mix hop mean", r.HopMix.Mean(), a.HopMean, r.HopMix.N},
				{"provider hop mean", r.HopProvider.Mean(), a.HopMean, r.HopProvider.N},
				{"end-to-end mean", r.EndToEnd.Mean(), a.EndToEndMean, r.EndToEnd.N},
			} {
				if rel := math.Abs(c.got-c.want) / c.want; rel > 0.02 {
					t.Errorf("%s = %.5f s, closed form %.5f s: off by %.2f%% (> 2%%) over %d samples", c.what, c.got, c.want, 100*rel, c.n)
				}
			}
			// The Erlang law ignores the millisecond cut (half a millisecond
			// per hop); the median must still be close.
			k := float64(tt.cfg.Layers + 1)
			if got, want := r.EndToEnd.Quantile(0.5), a.EndToEndP50-k*0.0005; math.Abs(got-want)/want > 0.03 {
				t.Errorf("end-to-end median %.4f s, Erlang %.4f s", got, want)
			}
		})
	}
}

func TestASingleMixOutputsFollowTheGeometricLaw(t *testing.T) {
	// One layer of mixes: a tagged input's position among its mix's later
	// departures must be geometric with q = μ/(λ+μ) (docs/ANALYSIS.md).
	tests := []struct {
		name string
		cfg  Config
	}{
		{"a small pool (λ/μ ≈ 2)", Config{Clients: 10, LambdaP: 0.5, LambdaL: 0.5, LambdaD: 0.5}},
		{"a larger pool (λ/μ ≈ 12)", Config{Clients: 40, LambdaP: 1, LambdaL: 1, LambdaD: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			c.Seed, c.Layers, c.MixesPerLayer, c.Providers, c.Mu = 3, 1, 8, 2, 10
			c.NoQuantize, c.TargetRate, c.MixTagRate, c.Duration = true, -1, 3, 20*time.Minute
			r := run(t, c)
			q := c.Mu / (r.LambdaMix + c.Mu)
			n := float64(r.Mix.Rank.N)
			if n < 5000 {
				t.Fatalf("only %v tags", n)
			}
			tail := 1.0
			for k := 1; k <= 8; k++ {
				want := GeometricP(q, k)
				tail -= want
				var got float64
				if k < len(r.Mix.Ranks) {
					got = float64(r.Mix.Ranks[k]) / n
				}
				if se := math.Sqrt(want * (1 - want) / n); math.Abs(got-want) > 4*se+0.002 {
					t.Errorf("P(rank %d) = %.4f, geometric(q=%.4f) %.4f (σ %.4f)", k, got, q, want, se)
				}
			}
			var gotTail int64
			for k := 9; k < len(r.Mix.Ranks); k++ {
				gotTail += r.Mix.Ranks[k]
			}
			if se := math.Sqrt(tail * (1 - tail) / n); math.Abs(float64(gotTail)/n-tail) > 4*se+0.002 {
				t.Errorf("P(rank > 8) = %.4f, geometric %.4f", float64(gotTail)/n, tail)
			}
			// The adversary's posterior must be calibrated: on average the
			// probability it puts on the true output equals Σ p².
			if d, se := r.Mix.PTrue.Mean()-r.Mix.Coll.Mean(), r.Mix.PTrue.StdErr(); math.Abs(d) > 4*se {
				t.Errorf("mean P(true output) %.4f, mean Σp² %.4f: posterior not calibrated", r.Mix.PTrue.Mean(), r.Mix.Coll.Mean())
			}
			if got, want := r.Mix.H.Mean(), PoolPosteriorEntropy(r.LambdaMix/c.Mu); math.Abs(got-want) > 0.05*want {
				t.Errorf("mean output entropy %.3f bits, pool-averaged closed form %.3f", got, want)
			}
		})
	}
}

// small is the network the anonymity tests use: big enough that entropy
// is far from log2(clients), small enough to run in seconds.
func small(c Config) Config {
	c.Seed, c.Layers, c.MixesPerLayer, c.Providers = 11, 3, 3, 3
	if c.Clients == 0 {
		c.Clients = 400
	}
	if c.Duration == 0 {
		c.Duration = 40 * time.Second
	}
	c.TargetRate, c.MaxTargets, c.MixTagRate = 10, 150, 2
	return c
}

func TestEntropyRisesWithTrafficAndDelay(t *testing.T) {
	scaled := func(f, mu float64) Config {
		return small(Config{LambdaP: 2 * f, LambdaL: f, LambdaD: f, Mu: mu, MessageRate: 0.1 * f})
	}
	tests := []struct {
		name string
		cfgs []Config // in order of rising anonymity
	}{
		{"more traffic per client (λ × 1/4, 1, 4)", []Config{scaled(0.25, 10), scaled(1, 10), scaled(4, 10)}},
		{"longer delays (μ = 40, 10, 2.5)", []Config{scaled(0.25, 40), scaled(0.25, 10), scaled(0.25, 2.5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prevS, prevM *Result
			for _, c := range tt.cfgs {
				r := run(t, c)
				if r.Sender.N < 50 {
					t.Fatalf("only %d targets", r.Sender.N)
				}
				if prevS != nil {
					if d, se := r.Sender.H.Mean()-prevS.Sender.H.Mean(), math.Hypot(r.Sender.H.StdErr(), prevS.Sender.H.StdErr()); d < 3*se {
						t.Errorf("sender entropy %.3f → %.3f bits (σ %.3f): did not rise", prevS.Sender.H.Mean(), r.Sender.H.Mean(), se)
					}
					if r.Mix.H.Mean() <= prevM.Mix.H.Mean() {
						t.Errorf("mix output entropy %.3f → %.3f bits: did not rise", prevM.Mix.H.Mean(), r.Mix.H.Mean())
					}
				}
				if r.Sender.MaxTrunc > 1e-6 {
					t.Errorf("truncation error %g", r.Sender.MaxTrunc)
				}
				prevS, prevM = r, r
			}
		})
	}
}

func TestSenderEntropyDeficitFollowsTheShotNoiseLaw(t *testing.T) {
	// With full pools, log2 N − H ≈ ∫g²/(2λ ln 2): it depends on
	// k = λ(L+1)/μ, not on N (docs/ANALYSIS.md, section 8).
	tests := []struct {
		name    string
		f, mu   float64
		clients int
	}{
		{"today's rates (k = 1.6)", 1, 10, 400},
		{"today's rates with 4× longer delays (k = 6.4)", 1, 2.5, 400},
		{"half the traffic and a quarter of the clients (k = 0.8)", 0.5, 10, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := small(Config{LambdaP: 2 * tt.f, LambdaL: tt.f, LambdaD: tt.f, MessageRate: 0.1 * tt.f, Mu: tt.mu, Clients: tt.clients,
				Duration: 20 * time.Second})
			c.MaxTargets = 60
			r := run(t, c)
			t.Logf("deficit %.4f bits (σ %.4f), law %.4f", math.Log2(float64(tt.clients))-r.Sender.H.Mean(), r.Sender.H.StdErr(), r.Analytic.SenderDeficit)
			got := math.Log2(float64(tt.clients)) - r.Sender.H.Mean()
			want := r.Analytic.SenderDeficit
			if math.Abs(got-want) > 0.15*want+3*r.Sender.H.StdErr() {
				t.Errorf("deficit %.4f bits (σ %.4f), shot-noise law %.4f", got, r.Sender.H.StdErr(), want)
			}
		})
	}
}

func TestSenderPosteriorIsCalibrated(t *testing.T) {
	// If the posterior is the adversary's true Bayesian posterior, the
	// probability it gives the true sender equals Σ p² on average.
	tests := []struct {
		name      string
		auditors  int
		probeRate float64
	}{
		{"clients only", 0, 0},
		{"with auditors' probes conditioned away", 3, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := small(Config{LambdaP: 0.5, LambdaL: 0.25, LambdaD: 0.25, MessageRate: 0.1, Mu: 50, Clients: 60,
				Duration: 4 * time.Minute, Auditors: tt.auditors, ProbeRate: tt.probeRate})
			c.MaxTargets = 3000
			r := run(t, c).Sender
			t.Logf("%d targets: mean P(true) %.4f, mean Σp² %.4f", r.N, r.PTrue.Mean(), r.Coll.Mean())
			if d, se := r.PTrue.Mean()-r.Coll.Mean(), r.PTrue.StdErr(); math.Abs(d) > 4*se {
				t.Errorf("mean P(true sender) %.4f, mean Σp² %.4f (σ %.4f): not calibrated", r.PTrue.Mean(), r.Coll.Mean(), se)
			}
			if r.Coll.Mean() < 0.05 {
				t.Fatalf("Σp² %.4f: too anonymous for the check to mean anything", r.Coll.Mean())
			}
		})
	}
}

func TestCorruptNodesReduceAnonymity(t *testing.T) {
	tests := []struct {
		name         string
		mixes, provs float64
		check        func(t *testing.T, honest, r *Result)
	}{
		{"a third of the mixes", 1.0 / 3, 0, func(t *testing.T, honest, r *Result) {
			if r.Sender.H.Mean() >= honest.Sender.H.Mean() {
				t.Errorf("entropy %.3f with corrupt mixes, %.3f without", r.Sender.H.Mean(), honest.Sender.H.Mean())
			}
		}},
		{"every mix and provider: the sender is known", 1, 1, func(t *testing.T, _, r *Result) {
			if r.Sender.H.Mean() > 1e-9 || r.Sender.PTrue.Mean() < 1-1e-9 || r.Sender.Identified != r.Sender.N {
				t.Errorf("entropy %.3g bits, P(true) %.6f, %d of %d identified", r.Sender.H.Mean(), r.Sender.PTrue.Mean(), r.Sender.Identified, r.Sender.N)
			}
		}},
	}
	honest := run(t, small(Config{}))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, honest, run(t, small(Config{CorruptMixes: tt.mixes, CorruptProviders: tt.provs})))
		})
	}
}

func TestProbesFillPoolsMoreThanTheyHideSenders(t *testing.T) {
	// Secret-shopper probes are indistinguishable from cover: they raise
	// every mix's arrival rate as the closed form says, and with it one
	// mix's output entropy by bits. But the adversary knows the auditors
	// and that they send no messages, so the posterior over clients is
	// set mostly by the clients' own packets in the delay window, and
	// rises by a fraction of a bit (docs/ANALYSIS.md, section 9).
	low := Config{LambdaP: 0.1, LambdaL: 0.05, LambdaD: 0.05, MessageRate: 0.01, Clients: 100, Duration: 2 * time.Minute}
	honest := run(t, small(low))
	low.Auditors, low.ProbeRate = 5, 20
	probed := run(t, small(low))
	if rel := math.Abs(probed.LambdaMix-probed.Analytic.LambdaMix) / probed.Analytic.LambdaMix; rel > 0.03 {
		t.Errorf("mix arrival rate with probes %.1f/s, analytic %.1f/s", probed.LambdaMix, probed.Analytic.LambdaMix)
	}
	if probed.Sent[Probe] == 0 || probed.Sender.Auditors.Mean() < 0.5 {
		t.Fatalf("%d probes sent, auditors' posterior share %.2f", probed.Sent[Probe], probed.Sender.Auditors.Mean())
	}
	if d := probed.Mix.H.Mean() - honest.Mix.H.Mean(); d < 1 {
		t.Errorf("mix output entropy %.2f → %.2f bits with probes: want a rise of a bit or more", honest.Mix.H.Mean(), probed.Mix.H.Mean())
	}
	d, se := probed.Sender.H.Mean()-honest.Sender.H.Mean(), math.Hypot(probed.Sender.H.StdErr(), honest.Sender.H.StdErr())
	if d < 3*se || d > 1 {
		t.Errorf("sender entropy %.2f → %.2f bits with probes (σ %.3f): want a small rise, under a bit", honest.Sender.H.Mean(), probed.Sender.H.Mean(), se)
	}
}

func TestASeedReproducesARun(t *testing.T) {
	c := small(Config{Duration: 20 * time.Second})
	a, b := run(t, c), run(t, c)
	same := func(x, y *Result) bool {
		return x.Events == y.Events && x.Sent == y.Sent && x.EndToEnd.Sum == y.EndToEnd.Sum &&
			x.Sender.H.Sum == y.Sender.H.Sum && x.Mix.H.Sum == y.Mix.H.Sum && x.PoolMix == y.PoolMix &&
			slices.Equal(x.Mix.Ranks, y.Mix.Ranks)
	}
	if !same(a, b) {
		t.Fatalf("one seed, two runs: events %d/%d, sent %v/%v, sender H %v/%v", a.Events, b.Events, a.Sent, b.Sent, a.Sender.H.Sum, b.Sender.H.Sum)
	}
	c.Seed++
	if same(a, run(t, c)) {
		t.Fatal("another seed gave the same run")
	}
}

func TestCoverOverheadMatchesTheRates(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"today's defaults", Config{}},
		{"no loops, heavy drops", Config{ZeroLambdaL: true, LambdaD: 4}},
		{"no ACKs and no mix loops", Config{NoACKs: true, ZeroLambdaM: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			c.Seed, c.Duration = 5, 10*time.Minute
			r := run(t, quiet(c))
			a := r.Analytic
			if math.Abs(r.CoverShare()-a.CoverShare) > 0.01 {
				t.Errorf("cover share %.4f, analytic %.4f", r.CoverShare(), a.CoverShare)
			}
			if rel := math.Abs(r.LinksPerFragment()-a.LinksPerFragment) / a.LinksPerFragment; rel > 0.03 {
				t.Errorf("link packets per fragment %.2f, analytic %.2f", r.LinksPerFragment(), a.LinksPerFragment)
			}
			if rel := math.Abs(r.LambdaMix-a.LambdaMix) / a.LambdaMix; rel > 0.02 {
				t.Errorf("mix arrival rate %.2f/s, analytic %.2f/s", r.LambdaMix, a.LambdaMix)
			}
			if rel := math.Abs(r.PoolMix-a.PoolMix) / a.PoolMix; rel > 0.03 {
				t.Errorf("mean mix pool %.2f, λ/μ %.2f", r.PoolMix, a.PoolMix)
			}
		})
	}
}

func TestValidateRefusesWhatCannotRun(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"more layers than a document holds", Config{Layers: 17}},
		{"more nodes than a document holds", Config{MixesPerLayer: 2000}},
		{"a negative rate", Config{LambdaD: -1}},
		{"a NaN μ", Config{Mu: math.NaN()}},
		{"a corrupt fraction over one", Config{CorruptMixes: 1.5}},
		{"one client", Config{Clients: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); !errors.Is(err, ErrConfig) {
				t.Fatalf("Validate() = %v, want ErrConfig", err)
			}
		})
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Run(ctx, quiet(Config{Clients: 2000, Duration: time.Hour}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run() = %v, want context.Canceled", err)
	}
}

func TestQueuePopsInTimeOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	var q queue
	var want []int64
	for range 5000 {
		e := event{t: r.Int64N(1000)}
		q.push(e)
		want = append(want, e.t)
	}
	slices.Sort(want)
	for i, w := range want {
		if got := q.pop().t; got != w {
			t.Fatalf("pop %d = %d, want %d", i, got, w)
		}
	}
}

// BenchmarkRun times one simulated minute of a 1000-client network with
// both analyses on; the scale run of docs/BENCHMARKS.md is a command
// (`sotto sim` with the flags given there), too long for a benchmark.
func BenchmarkRun(b *testing.B) {
	c := Config{Seed: 1, Clients: 1000, MixesPerLayer: 10, Providers: 10, LambdaP: 0.5, LambdaL: 0.25, LambdaD: 0.25,
		MessageRate: 0.05, Duration: time.Minute, Warmup: 10 * time.Second, TargetRate: 2}
	var events uint64
	for b.Loop() {
		r, err := Run(b.Context(), c)
		if err != nil {
			b.Fatal(err)
		}
		events += r.Events
	}
	b.ReportAllocs()
	b.ReportMetric(float64(events)/b.Elapsed().Seconds()/1e6, "Mevents/s")
}
