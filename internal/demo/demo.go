// Package demo is `sotto demo`: it starts a whole Sotto network on
// 127.0.0.1 (internal/localnet: every mix and provider its own `sotto node`
// process, gossip PKI and Badger storage in a temporary directory, short
// epochs), runs two clients of different providers (client over
// client/p2p, as an application would), sends messages both ways (short
// ones, one longer than a packet payload, one through a receiver-anonymous
// contact's SURB mailbox, and two to a recipient that is offline when they
// are sent and fetches them after restarting from its saved state), shows
// progress while it runs, and ends with a Summary: what arrived, the
// latency, the cover traffic share, loops, and what the nodes dropped.
// Summary.Err is the verdict: every message delivered intact exactly once.
//
// The package holds the demo's logic so that tests can run it on smaller
// networks; cmd/sotto/demo.go is only its flags.
package demo

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/e2e"
	"github.com/sottonet/sotto/internal/localnet"
)

// run is one demo in progress.
type run struct {
	cfg        Config
	log        *slog.Logger
	ln         *localnet.Net
	tr         *tracker
	pr         *progress
	alice, bob *peer
	pay        payResult // Accounting blindsig: carol and the wallets
	rnd        *mrand.Rand
	started    time.Time
	killed     *localnet.Node
	cpu0       time.Duration // this process's CPU when the clients started
	// gwNode0 and gwAcc0: the providers' node and accounting plugin
	// CPU when the clients started.
	gwNode0, gwAcc0 time.Duration
	mixLedger0      time.Duration // the mixes' work-ledger plugins' CPU then
	// clientsEpoch is the epoch the clients started in.
	clientsEpoch uint64
	schemas      []string // the nodes' storage-postgres schemas
}

// Run runs the demo until its plan is done or ctx ends (Ctrl-C), then stops
// the clients, stops the nodes gracefully (killing stragglers) and removes
// the temporary directory unless Keep. It returns the summary of what was
// measured (also when ctx ended early, then with ctx's error); the verdict
// is Summary.Err.
func Run(ctx context.Context, cfg Config) (_ *Summary, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "sotto-demo-"); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		if !cfg.Keep {
			defer os.RemoveAll(dir)
		}
	}
	cfg.Dir = dir
	log := cfg.Logger
	if log == nil {
		f, err := os.OpenFile(filepath.Join(dir, "demo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		defer f.Close()
		log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	r := &run{cfg: cfg, log: log, tr: newTracker(), pr: newProgress(cfg.Progress, cfg.Live),
		rnd: mrand.New(mrand.NewChaCha8(seed)), started: time.Now()}
	defer r.pr.done()

	r.pr.phase("starting %d mixes (%d layers × %d) and %d providers as node processes in %s",
		cfg.Layers*cfg.MixesPerLayer, cfg.Layers, cfg.MixesPerLayer, cfg.Providers, dir)
	ln, err := localnet.Start(ctx, localnet.Spec{
		Layers: cfg.Layers, MixesPerLayer: cfg.MixesPerLayer, Providers: cfg.Providers,
		Params: interfaces.NetworkParams{Mu: cfg.Mu, LambdaP: cfg.LambdaP, LambdaL: cfg.LambdaL,
			LambdaD: cfg.LambdaD, LambdaM: cfg.LambdaM},
		EpochPeriod: cfg.Epoch, Dir: dir, Binary: cfg.Binary, Env: cfg.Env,
		Network: "sotto-demo", Logger: log, ProviderAccounting: providerAccounting(cfg.Accounting),
		MixAccounting: mixAccounting(),
		Storage:       r.storage(), CheatingMix: cheatingMix(cfg), CheatDropFraction: cfg.CheatDrop,
		AuditRate: auditRate(cfg),
	})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	r.ln = ln
	if len(r.schemas) > 0 && !cfg.Keep {
		defer r.dropSchemas()
	}
	defer func() {
		r.pr.phase("stopping clients and nodes")
		r.stopAll()
		if cfg.Keep {
			r.pr.phase("kept %s (node logs in */node.log, the demo's in demo.log)", dir)
		}
	}()

	sum, err := r.main(ctx)
	if sum != nil {
		sum.Elapsed = time.Since(r.started)
		sum.Interrupted = ctx.Err() != nil
		if err != nil && !sum.Interrupted {
			sum.RunErr = err
		}
	}
	return sum, err
}

func (r *run) stopAll() {
	for _, p := range []*peer{r.alice, r.bob, r.pay.carol} {
		if p != nil {
			if err := p.stop(); err != nil {
				r.log.Warn("stopping a client", "err", err)
			}
		}
	}
	if err := r.ln.Stop(10 * time.Second); err != nil {
		r.log.Warn("stopping the nodes", "err", err)
	}
}

func (r *run) main(ctx context.Context) (*Summary, error) {
	wctx, cancel := context.WithTimeout(ctx, r.cfg.StartTimeout)
	err := r.ln.Wait(wctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("demo: waiting for the network to route: %w", err)
	}
	r.pr.phase("network routing: each of the %d nodes holds a document listing all of them", len(r.ln.Nodes))

	provs := r.ln.Providers()
	newCfg := func(p *peer) client.Config {
		return client.Config{Clock: r.ln.Clock, Network: r.ln.Spec.Network, FetchInterval: 500 * time.Millisecond,
			Messaging: e2e.Ratchet, Wallet: r.wallet(p)}
	}
	if r.alice, err = newPeer("alice", provs[0], filepath.Join(r.cfg.Dir, "alice.state"), r.log, r.tr, newCfg); err != nil {
		return nil, err
	}
	if r.bob, err = newPeer("bob", provs[1], filepath.Join(r.cfg.Dir, "bob.state"), r.log, r.tr, newCfg); err != nil {
		return nil, err
	}
	r.cpu0, _ = processCPU()
	r.gwNode0, r.gwAcc0, _ = r.gatewayCPU()
	r.mixLedger0 = r.mixLedgerCPU()
	r.clientsEpoch = uint64(r.ln.Clock.Now())
	for _, p := range []*peer{r.alice, r.bob} {
		if err := p.start(ctx); err != nil {
			return nil, err
		}
	}
	r.pr.phase("clients up: alice on %s, bob on %s, both sending Loopix cover traffic", provs[0].Name, provs[1].Name)
	if paying(r.cfg.Accounting) {
		if err := r.freeloader(ctx, provs[0], newCfg); err != nil {
			return nil, err
		}
	}

	stopStatus := r.showStatus(ctx)
	defer stopStatus()

	err = r.plan(ctx)
	if err == nil && r.cfg.WaitRewards {
		r.waitRewards(ctx)
	}
	sum := r.summary(context.WithoutCancel(ctx))
	if err != nil {
		return sum, err
	}
	return sum, nil
}

// waitRewards waits (Config.WaitRewards) until the epoch the clients
// started in has ended and a quarter epoch more has passed: nodes report
// an epoch's work when the next one starts, so the rewards report then
// has an epoch with the clients' payments and the work they paid for.
func (r *run) waitRewards(ctx context.Context) {
	until := r.ln.Clock.End(epoch.Epoch(r.clientsEpoch)).Add(r.cfg.Epoch / 4)
	if d := time.Until(until); d > 0 {
		r.pr.phase("waiting %v for epoch %d's work to reach the ledgers", d.Round(time.Second), r.clientsEpoch)
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
}
