package demo

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"
)

// Defaults of the Config fields left zero: they finish in well under a
// minute on two cores with every message delivered.
const (
	DefaultLayers          = 3
	DefaultMixesPerLayer   = 2
	DefaultProviders       = 2
	DefaultLambdaP         = 2  // client payload slots per second
	DefaultLambdaL         = 1  // client loops per second
	DefaultLambdaD         = 1  // client drop decoys per second
	DefaultLambdaM         = 1  // mix loops per second, per mix
	DefaultMu              = 10 // per-hop delay Exp(μ): mean 100 ms
	DefaultEpoch           = 20 * time.Second
	DefaultMessages        = 16
	DefaultSendGap         = 750 * time.Millisecond
	DefaultDeliveryTimeout = 60 * time.Second
	DefaultStartTimeout    = 90 * time.Second

	// MinMessages is the fixed part of the plan: two short forward
	// messages, a long one, one through a SURB mailbox, and two to an
	// offline recipient.
	MinMessages = 6

	// The designs Config.Accounting names.
	AccountingFree     = "free"
	AccountingBlindsig = "blindsig"
	AccountingChannels = "channels"
	AccountingShopper  = "shopper"
)

// Designs are the accounting designs the demo knows, in the order the
// comparison (contrib/compare-accounting.sh) runs them. A new design is
// one entry here and one case in providerAccounting (internal/demo/pay.go).
var Designs = []string{AccountingFree, AccountingBlindsig, AccountingChannels, AccountingShopper}

// Config is a demo run. Binary is required; the rest has defaults.
type Config struct {
	Layers, MixesPerLayer, Providers int
	LambdaP, LambdaL, LambdaD        float64
	LambdaM, Mu                      float64
	Epoch                            time.Duration

	// Messages is how many messages the plan sends (at least MinMessages).
	// With Duration set, messages are sent until Duration has passed since
	// the first one instead (the fixed part of the plan included).
	Messages int
	Duration time.Duration
	// SendGap is the pause between two messages of the online phase.
	SendGap time.Duration
	// DeliveryTimeout bounds the wait for messages to arrive after the
	// last one of a phase was sent.
	DeliveryTimeout time.Duration
	// StartTimeout bounds the wait for the nodes to route.
	StartTimeout time.Duration

	// KillMixAfter, when set, kills the first mix of layer 1 (SIGKILL)
	// that long after the first message was sent (but not before the
	// fixed part of the online plan arrived), to show the clients noticing
	// it and retransmitting over other paths.
	KillMixAfter time.Duration

	// Accounting is how providers charge: "free" (the default: no
	// accounting plugin) or "blindsig" (plugins/pay-blindsig at every
	// provider under its free-quota policy; alice and bob pay with its
	// wallet, and a third client, carol, has none and is refused).
	Accounting string
	// CheatDrop, in [0, 1), makes mix-2-1 (or mix-1-1 with one layer) a
	// cheating mix that drops that fraction of the packets it should
	// forward while counting them as forwarded work (host/config's
	// Experiment): what each design pays it shows in the rewards table.
	CheatDrop float64
	// WaitRewards makes the run, once its plan is done, wait until the
	// epoch the clients started in is over and its work reported (a
	// quarter epoch more), so that the rewards report has a whole epoch
	// to show however short the plan was.
	WaitRewards bool

	// Dir is the directory for the nodes, the clients' state and the demo's
	// log; empty: a fresh temporary directory. Keep keeps it afterwards
	// (a temporary one is removed otherwise; a given one is never removed).
	Dir  string
	Keep bool

	// Binary is the sotto executable the nodes run (`Binary node ...`),
	// with Env added to their environment.
	Binary string
	Env    []string

	// Progress receives the progress display; Live redraws a status line
	// in place (a terminal). Nil: no progress.
	Progress io.Writer
	Live     bool
	// Logger receives the demo's, the clients' and localnet's logs. Nil:
	// DIR/demo.log.
	Logger *slog.Logger

	// Storage is the nodes' storage plugin: "badger" (the default: each
	// node's own Badger directory) or "postgres" (storage-postgres: each
	// node a schema of its own, sotto_demo_<run>_<node>, in the database
	// PostgresDSN names, or the PG* environment's when it is empty; the
	// schemas are dropped at the end unless Keep).
	Storage     string
	PostgresDSN string
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	deff := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Accounting == "" {
		c.Accounting = AccountingFree
	}
	def(&c.Layers, DefaultLayers)
	def(&c.MixesPerLayer, DefaultMixesPerLayer)
	def(&c.Providers, DefaultProviders)
	def(&c.Messages, DefaultMessages)
	deff(&c.LambdaP, DefaultLambdaP)
	deff(&c.LambdaL, DefaultLambdaL)
	deff(&c.LambdaD, DefaultLambdaD)
	deff(&c.LambdaM, DefaultLambdaM)
	deff(&c.Mu, DefaultMu)
	defd(&c.Epoch, DefaultEpoch)
	defd(&c.SendGap, DefaultSendGap)
	defd(&c.DeliveryTimeout, DefaultDeliveryTimeout)
	defd(&c.StartTimeout, DefaultStartTimeout)
}

// Validate refuses a config the demo cannot run, with every reason.
func (c *Config) Validate() error {
	var errs []error
	if c.Binary == "" {
		errs = append(errs, errors.New("no sotto binary for the nodes"))
	}
	if c.Layers < 1 || c.MixesPerLayer < 1 {
		errs = append(errs, fmt.Errorf("%d layers × %d mixes: need at least one of each", c.Layers, c.MixesPerLayer))
	}
	if c.Providers < 2 {
		errs = append(errs, fmt.Errorf("%d providers: the two clients need two", c.Providers))
	}
	if c.Duration == 0 && c.Messages < MinMessages {
		errs = append(errs, fmt.Errorf("%d messages: the plan needs at least %d", c.Messages, MinMessages))
	}
	if !slices.Contains(Designs, c.Accounting) {
		errs = append(errs, fmt.Errorf("accounting %q: want one of %s", c.Accounting, strings.Join(Designs, ", ")))
	}
	if c.CheatDrop < 0 || c.CheatDrop >= 1 {
		errs = append(errs, fmt.Errorf("cheat drop %v: want a fraction in [0, 1)", c.CheatDrop))
	}
	if c.KillMixAfter > 0 && c.MixesPerLayer < 2 {
		errs = append(errs, errors.New("killing a mix needs two mixes per layer, or nothing routes"))
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"λP", c.LambdaP}, {"λL", c.LambdaL}, {"λD", c.LambdaD}, {"λM", c.LambdaM}, {"μ", c.Mu}} {
		if !(r.v > 0) || math.IsInf(r.v, 0) {
			errs = append(errs, fmt.Errorf("%s = %v: want a positive rate", r.name, r.v))
		}
	}
	if c.Epoch < 10*time.Second {
		errs = append(errs, fmt.Errorf("epoch %v: at least 10s, so that documents and contacts keep up", c.Epoch))
	}
	switch c.Storage {
	case "", "badger", "postgres":
	default:
		errs = append(errs, fmt.Errorf("storage %q: want badger or postgres", c.Storage))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"duration", c.Duration}, {"send gap", c.SendGap}, {"delivery timeout", c.DeliveryTimeout},
		{"start timeout", c.StartTimeout}, {"kill-mix delay", c.KillMixAfter}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("negative %s %v", d.name, d.v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}
