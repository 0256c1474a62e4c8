package sim

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sottonet/sotto/core/pkidoc"
)

// Defaults of the Config fields left zero. The rates and μ are today's
// defaults of `sotto demo` (internal/demo); the network is small enough
// that a run of Duration takes seconds.
const (
	DefaultLayers        = 3
	DefaultMixesPerLayer = 4
	DefaultProviders     = 4
	DefaultClients       = 200
	DefaultLambdaP       = 2
	DefaultLambdaL       = 1
	DefaultLambdaD       = 1
	DefaultLambdaM       = 1
	DefaultMu            = 10
	DefaultPayloadLen    = 2048
	DefaultDuration      = 5 * time.Minute
	DefaultMessageBytes  = 1000
	DefaultMessageRate   = 0.2 // real messages per client per second
	DefaultTargetRate    = 2   // targets per simulated second
	DefaultMaxTargets    = 2000
)

// Config is one simulated network and run. Zero fields take the defaults
// above (use the Zero* flags to ask for a zero rate); Validate refuses the
// rest of what cannot run.
type Config struct {
	Seed uint64

	Layers        int // mix layers (L)
	MixesPerLayer int // mixes in each layer (W)
	Providers     int
	Clients       int

	LambdaP, LambdaL, LambdaD float64 // client stream rates, per second
	LambdaM                   float64 // mix loop rate, per mix per second
	Mu                        float64 // per-hop delay Exp(μ), per second
	PayloadLen                int     // user forward payload, bytes (geometry)

	// ZeroLambdaL, ZeroLambdaD and ZeroLambdaM ask for a zero rate (a zero
	// field means "default").
	ZeroLambdaL, ZeroLambdaD, ZeroLambdaM bool

	// MessageRate is real messages per client per second (Poisson); each
	// goes to a uniformly drawn other client. NoMessages: none at all, every
	// payload slot carries a decoy (and there are no targets).
	MessageRate float64
	NoMessages  bool
	// MessageBytes is a message's length; it is cut into fragments of the
	// geometry's forward body less the 71 bytes of HPKE and fragment
	// header (client/message.go).
	MessageBytes int

	// Auditors and ProbeRate model the secret-shopper accounting design
	// (planned as plugins/pay-shopper; not in the tree yet): Auditors extra
	// senders, spread over the providers like clients, send probes at
	// ProbeRate per second each: loops over uniformly chosen paths,
	// indistinguishable from cover.
	Auditors  int
	ProbeRate float64

	// NoACKs turns off the SURB ACKs that destination providers send for
	// forward fragments and loops (on in Sotto).
	NoACKs bool
	// NoQuantize keeps the Exp(μ) delays in full precision instead of
	// cutting them to whole milliseconds as the Sphinx NodeDelay does.
	NoQuantize bool

	// CorruptMixes and CorruptProviders are the fractions of mixes and
	// providers (drawn with the seed) that reveal their input-output
	// mapping to the adversary.
	CorruptMixes, CorruptProviders float64

	Duration time.Duration // simulated time measured, after Warmup
	// Warmup is simulated time run before measuring, so that pools and
	// message queues reach their steady state. Zero: the longer of 30 mean
	// delays and 5 mean queue sojourns 1/(λP − message rate), plus 5 s.
	Warmup time.Duration

	// TargetRate is how many delivered real fragments per simulated
	// second become targets of the sender-anonymity analysis, up to
	// MaxTargets. Zero: the defaults; negative: none.
	TargetRate float64
	MaxTargets int
	// MixTagRate is how many inputs per mix per simulated second the
	// single-mix analysis tags (each arrival independently). Zero: 0.5;
	// negative: none.
	MixTagRate float64
}

func (c *Config) setDefaults() {
	defInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defF := func(p *float64, zero bool, v float64) {
		if *p == 0 && !zero {
			*p = v
		}
	}
	defInt(&c.Layers, DefaultLayers)
	defInt(&c.MixesPerLayer, DefaultMixesPerLayer)
	defInt(&c.Providers, DefaultProviders)
	defInt(&c.Clients, DefaultClients)
	defInt(&c.PayloadLen, DefaultPayloadLen)
	defInt(&c.MessageBytes, DefaultMessageBytes)
	defInt(&c.MaxTargets, DefaultMaxTargets)
	defF(&c.MixTagRate, false, 0.5)
	defF(&c.LambdaP, false, DefaultLambdaP)
	defF(&c.LambdaL, c.ZeroLambdaL, DefaultLambdaL)
	defF(&c.LambdaD, c.ZeroLambdaD, DefaultLambdaD)
	defF(&c.LambdaM, c.ZeroLambdaM, DefaultLambdaM)
	defF(&c.Mu, false, DefaultMu)
	defF(&c.MessageRate, c.NoMessages, DefaultMessageRate)
	if c.NoMessages {
		c.MessageRate = 0
	}
	defF(&c.TargetRate, false, DefaultTargetRate)
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Warmup == 0 && c.Mu > 0 {
		// Pools settle within a few mean delays; a client's message queue
		// (M/M/1 with service λP) within a few of its mean sojourns.
		w := 30 / c.Mu
		if rho := c.MessageRate; rho > 0 && rho < c.LambdaP {
			w = max(w, 5/(c.LambdaP-rho))
		}
		c.Warmup = time.Duration((w + 5) * float64(time.Second))
	}
}

// ErrConfig: a Config cannot run. Validate's error wraps it.
var ErrConfig = errors.New("sim: bad config")

// Validate fills the defaults and refuses what cannot run, naming every
// problem at once.
func (c *Config) Validate() error {
	c.setDefaults()
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf("%w: "+f, append([]any{ErrConfig}, a...)...)) }
	if c.Layers < 1 || c.Layers > pkidoc.MaxLayers {
		bad("%d layers: want 1..%d", c.Layers, pkidoc.MaxLayers)
	}
	if c.MixesPerLayer < 1 || c.Providers < 1 {
		bad("%d mixes per layer and %d providers: need at least one of each", c.MixesPerLayer, c.Providers)
	}
	if n := c.Layers*c.MixesPerLayer + c.Providers; n > pkidoc.MaxDocumentNodes {
		bad("%d nodes: a PKI document holds at most %d", n, pkidoc.MaxDocumentNodes)
	}
	if c.Clients < 2 || c.Clients > math.MaxInt32/2 {
		bad("%d clients: want 2..%d", c.Clients, math.MaxInt32/2)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"λP", c.LambdaP}, {"λL", c.LambdaL}, {"λD", c.LambdaD}, {"λM", c.LambdaM}, {"message rate", c.MessageRate},
		{"target rate", max(c.TargetRate, 0)}, {"corrupt mixes", c.CorruptMixes}, {"corrupt providers", c.CorruptProviders}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			bad("%s = %v: want a finite number ≥ 0", f.name, f.v)
		}
	}
	if !(c.Mu > 0) || math.IsInf(c.Mu, 0) {
		bad("μ = %v: want a finite rate > 0", c.Mu)
	}
	if c.LambdaP+c.LambdaL+c.LambdaD <= 0 {
		bad("λP + λL + λD = 0: clients would send nothing")
	}
	if c.CorruptMixes > 1 || c.CorruptProviders > 1 {
		bad("corrupt fractions %v, %v: want 0..1", c.CorruptMixes, c.CorruptProviders)
	}
	if c.Duration <= 0 || c.Warmup < 0 {
		bad("duration %v, warmup %v", c.Duration, c.Warmup)
	}
	if c.Auditors < 0 || c.Auditors > math.MaxInt32/2 || (c.Auditors > 0 && !(c.ProbeRate > 0)) || math.IsInf(c.ProbeRate, 0) {
		bad("%d auditors at %v probes/s: want auditors ≥ 0 with a finite rate > 0", c.Auditors, c.ProbeRate)
	}
	if c.MessageBytes < 1 {
		bad("message of %d bytes", c.MessageBytes)
	}
	return errors.Join(errs...)
}

// Params are the network parameters the simulated PKI document publishes.
func (c *Config) Params() pkidoc.NetworkParams {
	return pkidoc.NetworkParams{
		Hops: uint8(c.Layers), PayloadLen: uint32(c.PayloadLen), Layers: uint8(c.Layers),
		Mu: c.Mu, LambdaP: c.LambdaP, LambdaL: c.LambdaL, LambdaD: c.LambdaD, LambdaM: c.LambdaM,
		EpochPeriod: 20 * time.Minute,
	}
}
