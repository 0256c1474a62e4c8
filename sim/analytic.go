package sim

import (
	"math"
	"time"
)

// Analytic holds the closed forms of docs/ANALYSIS.md for a Config, to
// set beside what a run measured.
type Analytic struct {
	HopMean       float64 // mean per-hop delay, s (cap and millisecond cut included)
	HopMeanIdeal  float64 // 1/μ
	EndToEndMean  float64 // (L+1) hops: gateway and L mixes
	EndToEndP50   float64 // Erlang(L+1, μ) quantiles, s
	EndToEndP99   float64
	FragmentRate  float64 // real fragments per client per second
	LambdaMix     float64 // pool arrivals per second at one mix
	LambdaGateway float64 // pool arrivals per second at one provider
	PoolMix       float64 // mean pool λ/μ at a mix (M/M/∞)
	PoolGateway   float64
	MixEntropy    float64 // bits: a tagged input's rank among a mix's outputs
	// MixPosteriorEntropy approximates the adversary's mean posterior
	// entropy at one mix: GeometricEntropy(1/n) averaged over the pool
	// n = 1 + Poisson(λ/μ) an arrival finds (PASTA). It is below
	// MixEntropy: the adversary sees n, and entropy is concave.
	MixPosteriorEntropy float64
	// SenderDeficit approximates log2 N − H for the sender entropy H when
	// every pool holds many packets (docs/ANALYSIS.md, section 8): the
	// posterior weight of a client is then the Erlang(L+1, μ) density
	// summed over its packets, a Poisson shot noise of rate λ, whose
	// relative variance ∫g²/λ gives the deficit ∫g²/(2λ ln 2). It needs
	// k = λ(L+1)/μ of about 0.5 or more.
	SenderDeficit float64
	// QueueWait is a one-fragment message's mean wait for a payload slot:
	// the queue is M/M/1 with service λP, so 1/(λP - ρ) (NaN if ρ ≥ λP).
	QueueWait  float64
	CoverShare float64 // share of client packets that carry no real fragment
	// LinksPerFragment is link traversals (packets × links) of all traffic
	// per real fragment delivered: the bandwidth overhead factor.
	LinksPerFragment float64
}

// NewAnalytic evaluates the closed forms for c (defaults filled).
func NewAnalytic(c Config) Analytic {
	_ = c.Validate() // fills defaults; a bad config still gives numbers
	var a Analytic
	mu, L := c.Mu, float64(c.Layers)
	capd := time.Duration(10 / mu * float64(time.Second)).Seconds()
	a.HopMeanIdeal = 1 / mu
	a.HopMean = HopMean(mu, capd, !c.NoQuantize)
	a.EndToEndMean = (L + 1) * a.HopMean
	a.EndToEndP50 = ErlangQuantile(c.Layers+1, mu, 0.5)
	a.EndToEndP99 = ErlangQuantile(c.Layers+1, mu, 0.99)
	n, w, prov := float64(c.Clients), float64(c.MixesPerLayer), float64(c.Providers)
	mixes := L * w
	nfrag := math.Ceil(float64(c.MessageBytes) / float64(fragCapacity(c.PayloadLen)))
	a.FragmentRate = min(c.MessageRate*nfrag, c.LambdaP)
	total := c.LambdaP + c.LambdaL + c.LambdaD
	ack := 0.0
	if !c.NoACKs {
		ack = a.FragmentRate + c.LambdaL
	}
	probes := float64(c.Auditors) * c.ProbeRate
	if !c.NoACKs {
		probes *= 2 // each probe is ACKed like a loop
	}
	a.LambdaMix = (n*(total+ack)+probes)/w + (L-1)*c.LambdaM
	a.LambdaGateway = (n*total + float64(c.Auditors)*c.ProbeRate + mixes*c.LambdaM) / prov
	a.PoolMix = a.LambdaMix / mu
	a.PoolGateway = a.LambdaGateway / mu
	a.MixEntropy = GeometricEntropy(mu / (a.LambdaMix + mu))
	a.MixPosteriorEntropy = PoolPosteriorEntropy(a.LambdaMix / mu)
	a.QueueWait = math.NaN()
	if rho := c.MessageRate * nfrag; nfrag == 1 && rho < c.LambdaP {
		a.QueueWait = 1 / (c.LambdaP - rho)
	}
	a.CoverShare = 1 - a.FragmentRate/total
	a.SenderDeficit = SenderDeficit(c.Layers+1, total, mu)
	links := n*(total*(L+2)+ack*(L+1)) + mixes*c.LambdaM*(L+1)
	if c.Auditors > 0 {
		links += float64(c.Auditors) * c.ProbeRate * (L + 2)
		if !c.NoACKs {
			links += float64(c.Auditors) * c.ProbeRate * (L + 1)
		}
	}
	a.LinksPerFragment = links / (n * a.FragmentRate)
	return a
}

// fragCapacity is a fragment's message bytes for a user forward payload
// of payloadLen: the body less HPKE (48) and the fragment header (23)
// (client/message.go).
func fragCapacity(payloadLen int) int { return payloadLen - 71 }

// HopMean is the mean of one hop's delay as the client draws it: Exp(μ)
// capped at capd seconds, then (quantize) cut to whole milliseconds:
// E[⌊min(X, c)/δ⌋δ] = δ Σ_{k=1}^{⌊c/δ⌋} e^{-μkδ} with δ = 1 ms.
func HopMean(mu, capd float64, quantize bool) float64 {
	if !quantize {
		return (1 - math.Exp(-mu*capd)) / mu
	}
	const delta = 1e-3
	r := math.Exp(-mu * delta)
	k := math.Floor(capd/delta + 1e-9)
	return delta * r * (1 - math.Pow(r, k)) / (1 - r)
}

// ErlangCDF is P(S ≤ t) for S the sum of k independent Exp(μ).
func ErlangCDF(k int, mu, t float64) float64 {
	if t <= 0 {
		return 0
	}
	x := mu * t
	term, sum := 1.0, 1.0
	for i := 1; i < k; i++ {
		term *= x / float64(i)
		sum += term
	}
	return 1 - math.Exp(-x)*sum
}

// ErlangQuantile inverts ErlangCDF by bisection.
func ErlangQuantile(k int, mu, q float64) float64 {
	lo, hi := 0.0, float64(k)/mu
	for ErlangCDF(k, mu, hi) < q {
		hi *= 2
	}
	for range 100 {
		m := (lo + hi) / 2
		if ErlangCDF(k, mu, m) < q {
			lo = m
		} else {
			hi = m
		}
	}
	return (lo + hi) / 2
}

// GeometricEntropy is the entropy in bits of the geometric law
// P(k) = q(1-q)^(k-1), k ≥ 1: h(q)/q with h the binary entropy. It is the
// entropy of a tagged input's position among a Poisson mix's outputs when
// q = μ/(λ+μ) (docs/ANALYSIS.md).
func GeometricEntropy(q float64) float64 {
	if q >= 1 {
		return 0
	}
	return (-(1-q)*math.Log2(1-q) - q*math.Log2(q)) / q
}

// GeometricP is P(K = k) of the geometric law with parameter q.
func GeometricP(q float64, k int) float64 { return q * math.Pow(1-q, float64(k-1)) }

// PoolPosteriorEntropy is Σ_n P(n) GeometricEntropy(1/n) for the pool an
// arrival finds, n = 1 + Poisson(m), m = λ/μ.
func PoolPosteriorEntropy(m float64) float64 {
	var h, mass float64
	lp := -m // log P(Poisson = 0)
	for k := 0; k < 10000; k++ {
		if k > 0 {
			lp += math.Log(m) - math.Log(float64(k))
		}
		p := math.Exp(lp)
		h += p * GeometricEntropy(1/float64(k+1))
		mass += p
		if float64(k) > m && p < 1e-16 {
			break
		}
	}
	return h / mass
}

// SenderDeficit is ∫g²/(2λ ln 2) bits for g the Erlang(n, μ) density,
// ∫g² = μ (2n−2)! / ((n−1)!² 2^(2n−1)), and λ a client's packet rate.
func SenderDeficit(n int, lambda, mu float64) float64 {
	lg2n2, _ := math.Lgamma(float64(2*n - 1))
	lgn1, _ := math.Lgamma(float64(n))
	g2 := mu * math.Exp(lg2n2-2*lgn1-float64(2*n-1)*math.Ln2)
	return g2 / (2 * lambda * math.Ln2)
}
