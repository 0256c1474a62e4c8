package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/client/p2p"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/interfaces/wallet"
	"github.com/sottonet/sotto/internal/e2e"
	bswallet "github.com/sottonet/sotto/plugins/pay-blindsig/wallet"
	chwallet "github.com/sottonet/sotto/plugins/pay-channels/wallet"
)

// clientFlags are the flags send and recv share: where the provider is,
// the state file, and (optionally) the network's epoch clock.
type clientFlags struct {
	provider   string
	state      string
	genesis    string
	period     time.Duration
	grace      time.Duration
	nodeConfig string
	network    string
	verbose    bool
	pay        string
	vouchers   []string
	// maxTries, when set, overrides the client's MaxTries: send sets it so
	// that its --timeout, not the try count, decides when to give up.
	maxTries int
}

func (f *clientFlags) register(fs *pflag.FlagSet, stateHelp string) {
	fs.StringVar(&f.provider, "provider", "", "the provider's libp2p multiaddr, ending in /p2p/PEER-ID (kept in --state)")
	fs.StringVar(&f.state, "state", "", stateHelp)
	fs.StringVar(&f.genesis, "genesis", "", "the network's genesis, RFC 3339 (default: learned from the provider, kept in --state)")
	fs.DurationVar(&f.period, "epoch-period", epoch.DefaultPeriod, "with --genesis: the network's epoch length")
	fs.DurationVar(&f.grace, "epoch-grace", config.Default().Epoch.Grace, "with --genesis: the network's key grace period after an epoch")
	fs.StringVar(&f.nodeConfig, "config", "", "deprecated (a node config holds secrets): use --network; a node config to take the epoch clock from")
	fs.StringVar(&f.network, "network", "", "the network file (from the operator's `sotto network init`): the epoch clock, and the provider (the first, or --provider N for the Nth)")
	fs.BoolVar(&f.verbose, "verbose", false, "log to stderr at debug level (default: warnings only)")
	fs.StringVar(&f.pay, "pay", "blindsig", "how to pay a provider that charges: blindsig (tokens of plugins/pay-blindsig, kept in --state), channels (a payment channel of plugins/pay-channels, kept in --state) or none")
	fs.StringSliceVar(&f.vouchers, "voucher", nil, "a purchase voucher (hex) for a blindsig provider under the voucher policy; repeatable")
}

// wallet is the wallet --pay names (nil: none).
func (f *clientFlags) wallet() (wallet.Wallet, error) {
	switch f.pay {
	case "none":
		if len(f.vouchers) > 0 {
			return nil, errors.New("--voucher needs --pay blindsig")
		}
		return nil, nil
	case "blindsig":
		var vs [][]byte
		for _, v := range f.vouchers {
			b, err := hex.DecodeString(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("--voucher: not hex: %w", err)
			}
			vs = append(vs, b)
		}
		return bswallet.New(bswallet.Options{Vouchers: vs}), nil
	case "channels":
		if len(f.vouchers) > 0 {
			return nil, errors.New("--voucher needs --pay blindsig")
		}
		return chwallet.New(chwallet.Options{}), nil
	}
	return nil, fmt.Errorf("--pay %q: want blindsig, channels or none", f.pay)
}

// clock returns the epoch clock the flags give, if any.
func (f *clientFlags) clock(fs *pflag.FlagSet) (epoch.Clock, bool, error) {
	var genesis time.Time
	period, grace := f.period, f.grace
	if f.network != "" {
		n, err := config.LoadNetwork(f.network)
		if err != nil {
			return epoch.Clock{}, false, err
		}
		genesis, period, grace = n.Genesis, n.Period, n.Grace
		if i, err := strconv.Atoi(f.provider); err == nil {
			// --provider N: the network file's Nth provider.
			if i < 1 || i > len(n.Providers) {
				return epoch.Clock{}, false, fmt.Errorf("--provider %d: the network file lists %d provider(s)", i, len(n.Providers))
			}
			f.provider = n.Providers[i-1]
		} else if f.provider == "" && len(n.Providers) > 0 {
			f.provider = n.Providers[0]
		}
	}
	if f.nodeConfig != "" {
		c, err := config.Load(config.Sources{File: f.nodeConfig})
		if err != nil {
			return epoch.Clock{}, false, err
		}
		genesis = c.Epoch.Genesis
		if !fs.Changed("epoch-period") {
			period = c.Epoch.Period
		}
		if !fs.Changed("epoch-grace") {
			grace = c.Epoch.Grace
		}
	}
	if f.genesis != "" {
		t, err := time.Parse(time.RFC3339Nano, f.genesis)
		if err != nil {
			return epoch.Clock{}, false, fmt.Errorf("--genesis: want RFC 3339 (2026-01-01T00:00:00Z): %w", err)
		}
		genesis = t
	}
	if genesis.IsZero() {
		return epoch.Clock{}, false, nil
	}
	clk, err := epoch.New(genesis, period, grace)
	return clk, err == nil, err
}

func (f *clientFlags) logger(w io.Writer) *slog.Logger {
	lvl := slog.LevelWarn
	if f.verbose {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// runningClient is a client running against its provider.
type runningClient struct {
	*client.Client
	store  client.Store
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	runErr error
}

// learnTimeout bounds the first contact with the provider of a client that
// must learn the epoch clock from it.
const learnTimeout = 20 * time.Second

// start opens the state (--state, or a fresh in-memory one), builds the
// client of the provider (--provider, or the one in the state) and runs
// it: what send and recv both do first. A client that knows no clock yet
// reaches its provider at once to learn it; one that knows it runs even
// while its provider is down (it retries with backoff).
func (f *clientFlags) start(ctx context.Context, cmd *cobra.Command, onStatus func(client.MessageStatus)) (*runningClient, error) {
	clk, haveClock, err := f.clock(cmd.Flags())
	if err != nil {
		return nil, err
	}
	log := f.logger(cmd.ErrOrStderr())
	var store client.Store = &client.MemoryStore{}
	var fs *client.FileStore
	if f.state != "" {
		if fs, err = client.OpenFileStore(f.state); err != nil {
			return nil, err
		}
		if err := migrateCLIState(fs); err != nil {
			fs.Close()
			return nil, err
		}
		store = fs
	}
	closeStore := func() {
		if fs != nil {
			fs.Close()
		}
	}
	w, err := f.wallet()
	if err != nil {
		closeStore()
		return nil, err
	}
	// Every message is sealed through the messaging layer (plugins/msg-ratchet),
	// its state in the client's own state file.
	cfg := client.Config{Store: store, Logger: log, OnStatus: onStatus, Messaging: e2e.Ratchet, Wallet: w, MaxTries: f.maxTries}
	if haveClock {
		cfg.Clock = clk
	}
	c, err := p2p.Open(f.provider, cfg)
	if err != nil {
		closeStore()
		if f.provider == "" {
			return nil, fmt.Errorf("no provider: pass --provider /ip4/.../tcp/.../p2p/PEER-ID (%w)", err)
		}
		return nil, err
	}
	// A first contact with the provider surfaces a clock that does not fit
	// at once; a client that knows its clock rides out a provider that is
	// down (Run retries), one that does not cannot start without it.
	_, known := c.Clock()
	lctx, cancel := context.WithTimeout(ctx, learnTimeout)
	err = c.Connect(lctx)
	cancel()
	switch {
	case errors.Is(err, client.ErrWrongClock):
		c.Close()
		closeStore()
		return nil, err
	case err != nil && !known:
		c.Close()
		closeStore()
		return nil, fmt.Errorf("the network's epoch clock is unknown and the provider did not tell it (%w): "+
			"pass --genesis (and --epoch-period, --epoch-grace) or --config NODE.yaml", err)
	case err != nil:
		log.Warn("the provider cannot be reached now; retrying with backoff", "err", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	rc := &runningClient{Client: c, store: store, log: log, cancel: cancel}
	rc.wg.Go(func() {
		if err := c.Run(rctx); err != nil {
			rc.runErr = err
			log.Error("client stopped", "err", err)
		}
	})
	return rc, nil
}

// stop stops the client (which saves its state), closes its link and
// releases the state file.
func (rc *runningClient) stop() error {
	rc.cancel()
	rc.wg.Wait()
	err := rc.Close()
	if fs, ok := rc.store.(*client.FileStore); ok {
		err = errors.Join(err, fs.Close())
	}
	return errors.Join(rc.runErr, err)
}

// migrateCLIState rewrites a state file of an earlier sotto (its own
// envelope around the client's state: identity, provider, clock, client)
// as the client's own state, which now holds all of it.
func migrateCLIState(s client.Store) error {
	b, err := s.Load()
	if err != nil || b == nil {
		return err
	}
	var old map[string]json.RawMessage
	if json.Unmarshal(b, &old) != nil || old["provider"] == nil || old["identity"] == nil {
		return nil
	}
	st := map[string]json.RawMessage{"version": json.RawMessage("1")}
	if c := old["client"]; c != nil {
		if err := json.Unmarshal(c, &st); err != nil {
			return fmt.Errorf("state file of an earlier sotto: %w", err)
		}
	}
	st["identity"] = old["identity"]
	for from, to := range map[string]string{"provider": "provider_addr", "genesis": "genesis", "epoch_period": "epoch_period", "epoch_grace": "epoch_grace"} {
		if v, ok := old[from]; ok {
			st[to] = v
		}
	}
	nb, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return s.Save(nb)
}
