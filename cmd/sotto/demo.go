package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sottonet/sotto/internal/demo"
)

// nodeEnv is added to the environment of the node processes the demo
// starts (a test sets it so that the test binary acts as sotto).
var nodeEnv []string

func demoCmd() *cobra.Command {
	var (
		cfg     demo.Config
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole Sotto network on this machine and send messages through it",
		Long: `Run a whole Sotto network on 127.0.0.1 and send messages through it.

Every mix and provider is its own 'sotto node' process (this binary), with the
gossip PKI and Badger storage plugins, keys and data in a temporary directory,
and short epochs. Two clients, alice and bob, each on its own provider, send
Loopix cover traffic and messages both ways: short ones, one longer than a
packet payload (fragmented), one through a receiver-anonymous contact (SURB
mailbox), and two to bob while he is offline, which he fetches after
restarting from his saved state. Progress shows while it runs; a summary
ends it: messages sent and delivered, end-to-end latency, the cover share of
the clients' packets, loops returned, and what the nodes dropped (scraped
from their /metrics).

It exits non-zero if any message was not delivered intact exactly once.
Ctrl-C stops the clients and the nodes and removes the temporary directory
(--keep keeps it: node logs in DIR/NAME/node.log, the demo's in
DIR/demo.log).`,
		Example: "  sotto demo\n  sotto demo --layers 2 --mixes-per-layer 3 --lambda-p 5 --mu 20 --messages 30\n" +
			"  sotto demo --kill-mix 5s   # take a mix down mid-run and watch the clients route around it\n" +
			"  sotto demo --accounting blindsig   # providers charge tokens; a client without any is refused\n" +
			"  sotto demo --accounting channels   # providers charge over payment channels (vouchers)\n" +
			"  sotto demo --storage postgres --postgres-dsn postgres://sotto@127.0.0.1/sotto   # nodes on PostgreSQL, a schema each",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			bin, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding this executable for the nodes: %w", err)
			}
			cfg.Binary, cfg.Env = bin, nodeEnv
			out := cmd.OutOrStdout()
			cfg.Progress, cfg.Live = out, isTerminal(out)
			if verbose {
				cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			sum, err := demo.Run(ctx, cfg)
			if sum != nil {
				sum.Write(out)
			}
			switch {
			case errors.Is(ctx.Err(), context.Canceled) && cmd.Context().Err() == nil:
				return errors.New("interrupted")
			case err != nil:
				return err
			}
			return sum.Err()
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Layers, "layers", demo.DefaultLayers, "mix layers")
	f.IntVar(&cfg.MixesPerLayer, "mixes-per-layer", demo.DefaultMixesPerLayer, "mixes in each layer")
	f.IntVar(&cfg.Providers, "providers", demo.DefaultProviders, "providers (at least 2: alice and bob use the first two)")
	f.Float64Var(&cfg.LambdaP, "lambda-p", demo.DefaultLambdaP, "client payload rate λP, slots per second")
	f.Float64Var(&cfg.LambdaL, "lambda-l", demo.DefaultLambdaL, "client loop cover rate λL, per second")
	f.Float64Var(&cfg.LambdaD, "lambda-d", demo.DefaultLambdaD, "client drop cover rate λD, per second")
	f.Float64Var(&cfg.LambdaM, "lambda-m", demo.DefaultLambdaM, "mix loop cover rate λM, per second per mix")
	f.Float64Var(&cfg.Mu, "mu", demo.DefaultMu, "per-hop delay rate μ: each hop holds a packet Exp(μ) seconds (mean 1/μ)")
	f.DurationVar(&cfg.Epoch, "epoch", demo.DefaultEpoch, "epoch length (keys rotate and documents renew every epoch)")
	f.IntVar(&cfg.Messages, "messages", demo.DefaultMessages, fmt.Sprintf("messages to send (at least %d)", demo.MinMessages))
	f.DurationVar(&cfg.Duration, "duration", 0, "send messages for this long instead of a fixed --messages count")
	f.DurationVar(&cfg.KillMixAfter, "kill-mix", 0, "kill one mix (SIGKILL) this long after the first message (needs 2 mixes per layer)")
	f.StringVar(&cfg.Accounting, "accounting", demo.AccountingFree, "how providers charge: free (nothing), blindsig (blind-signature tokens: alice and bob pay, carol without a wallet is refused), channels (payment channels: alice and bob pay with vouchers, carol is refused) or shopper (nobody pays; providers keep the secret shopper's ledger)")
	f.BoolFunc("list-accounting", "print the accounting designs the demo knows, one a line, and exit (contrib/compare-accounting.sh runs them all)", func(string) error {
		fmt.Fprintln(cmd.OutOrStdout(), strings.Join(demo.Designs, "\n"))
		os.Exit(0)
		return nil
	})
	f.Float64Var(&cfg.CheatDrop, "cheat-drop", 0, "make mix-2-1 a cheating mix that drops this fraction of what it should forward while counting it as work (experiments only)")
	f.BoolVar(&cfg.Keep, "keep", false, "keep the temporary directory (keys, node logs, Badger data, client state)")
	f.StringVar(&cfg.Storage, "storage", "badger", "the nodes' storage plugin: badger (a directory each) or postgres (a schema each, see --postgres-dsn)")
	f.StringVar(&cfg.PostgresDSN, "postgres-dsn", "", "with --storage postgres: the database's DSN (empty: the PG* environment variables)")
	f.BoolVar(&verbose, "verbose", false, "log the demo and its clients to stderr at debug level (else to DIR/demo.log)")
	return cmd
}

// isTerminal reports whether w is a terminal (a character device other
// than /dev/null), where the progress line is redrawn in place.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}
