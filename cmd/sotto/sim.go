package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sottonet/sotto/sim"
)

func simCmd() *cobra.Command {
	var (
		cfg            sim.Config
		sweep, verbose bool
		outDir, csvOut string
		workers        int
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate a Sotto network and measure its anonymity, latency and overhead",
		Long: `Simulate a Sotto network in simulated time (sim/, docs/ANALYSIS.md).

Clients send Loopix cover traffic and real messages through their providers
and the stratified mix layers; every hop but the last holds a packet for an
Exp(μ) delay. The network is a real signed PKI document read by core/topology;
core/cover draws the send schedule and core/mix the delays. A global passive
adversary, optionally running a fraction of the mixes and providers, tries to
find each target message's sender: the run reports the entropy of its
posterior, a mix's output entropy, latency per hop and end to end, and the
bandwidth spent on cover, each beside its closed form. A seed reproduces a
run exactly. Progress goes to stderr.

--sweep runs the sweep of docs/ANALYSIS.md around the given parameters (entropy
against λ for several μ and against the corrupt fraction, latency against
layers, overhead against λL and λD) on all cores and writes a CSV and PNG plots.`,
		Example: "  sotto sim\n" +
			"  sotto sim --clients 1000 --lambda-p 0.5 --mu 5 --corrupt-mixes 0.2\n" +
			"  sotto sim --mixes-per-layer 334 --providers 100 --clients 100000 --lambda-p 0.1 --lambda-l 0.05 \\\n" +
			"      --lambda-d 0.05 --lambda-m 0.1 --message-rate 0.02 --duration 1h --target-rate 0.25   # the scale run\n" +
			"  sotto sim --sweep --out-dir docs",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			errw := cmd.ErrOrStderr()
			log := slog.New(slog.DiscardHandler)
			if verbose {
				log = slog.New(slog.NewTextHandler(errw, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			if sweep {
				return runSweep(ctx, cmd.OutOrStdout(), errw, cfg, workers, outDir, csvOut)
			}
			bar := &progressBar{w: errw, start: time.Now()}
			res, err := sim.Run(ctx, cfg, sim.WithLogger(log), sim.WithProgress(bar.update))
			bar.done()
			if err != nil {
				if errors.Is(err, context.Canceled) && cmd.Context().Err() == nil {
					return errors.New("interrupted")
				}
				return err
			}
			res.Write(cmd.OutOrStdout())
			return nil
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of every random draw: the same seed gives the same run")
	f.IntVar(&cfg.Layers, "layers", sim.DefaultLayers, "mix layers L")
	f.IntVar(&cfg.MixesPerLayer, "mixes-per-layer", sim.DefaultMixesPerLayer, "mixes in each layer W")
	f.IntVar(&cfg.Providers, "providers", sim.DefaultProviders, "providers (clients are spread evenly over them)")
	f.IntVar(&cfg.Clients, "clients", sim.DefaultClients, "clients")
	f.Float64Var(&cfg.LambdaP, "lambda-p", sim.DefaultLambdaP, "client payload rate λP, per second")
	f.Float64Var(&cfg.LambdaL, "lambda-l", sim.DefaultLambdaL, "client loop rate λL, per second (0: none)")
	f.Float64Var(&cfg.LambdaD, "lambda-d", sim.DefaultLambdaD, "client drop rate λD, per second (0: none)")
	f.Float64Var(&cfg.LambdaM, "lambda-m", sim.DefaultLambdaM, "mix loop rate λM, per mix per second (0: none)")
	f.Float64Var(&cfg.Mu, "mu", sim.DefaultMu, "per-hop delay Exp(μ), per second (mean delay 1/μ)")
	f.IntVar(&cfg.PayloadLen, "payload", sim.DefaultPayloadLen, "user forward payload length in bytes (sets the packet size)")
	f.Float64Var(&cfg.MessageRate, "message-rate", sim.DefaultMessageRate, "real messages per client per second (0: none)")
	f.IntVar(&cfg.MessageBytes, "message-bytes", sim.DefaultMessageBytes, "message length in bytes (cut into fragments)")
	f.IntVar(&cfg.Auditors, "auditors", 0, "secret-shopper auditors sending probes (extra senders the adversary knows)")
	f.Float64Var(&cfg.ProbeRate, "probe-rate", 0, "probes per auditor per second")
	f.BoolVar(&cfg.NoACKs, "no-acks", false, "providers send no SURB ACKs")
	f.BoolVar(&cfg.NoQuantize, "no-quantize", false, "keep delays in full precision (the Sphinx NodeDelay is whole milliseconds)")
	f.Float64Var(&cfg.CorruptMixes, "corrupt-mixes", 0, "fraction of mixes that reveal their input-output mapping")
	f.Float64Var(&cfg.CorruptProviders, "corrupt-providers", 0, "fraction of providers that reveal their input-output mapping")
	f.DurationVar(&cfg.Duration, "duration", sim.DefaultDuration, "simulated time measured")
	f.DurationVar(&cfg.Warmup, "warmup", 0, "simulated time before measuring (0: 30 mean delays + 5 s)")
	f.Float64Var(&cfg.TargetRate, "target-rate", sim.DefaultTargetRate, "target messages analysed per simulated second (negative: none)")
	f.IntVar(&cfg.MaxTargets, "max-targets", sim.DefaultMaxTargets, "most target messages analysed")
	f.Float64Var(&cfg.MixTagRate, "mix-tag-rate", 0.5, "inputs per mix per simulated second followed by the single-mix analysis (negative: none)")
	f.BoolVar(&sweep, "sweep", false, "run the sweep of docs/ANALYSIS.md around these parameters and write CSV and plots")
	f.StringVar(&outDir, "out-dir", "docs", "with --sweep: where the plots (sim_*.png) go")
	f.StringVar(&csvOut, "csv", "", "with --sweep: the CSV file (default OUT-DIR/sim_sweep.csv)")
	f.IntVar(&workers, "workers", 0, "with --sweep: runs at once (0: GOMAXPROCS)")
	f.BoolVar(&verbose, "verbose", false, "log the run's phases to stderr")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		// A zero rate on the command line means zero, not "the default".
		cfg.ZeroLambdaL = cmd.Flags().Changed("lambda-l") && cfg.LambdaL == 0
		cfg.ZeroLambdaD = cmd.Flags().Changed("lambda-d") && cfg.LambdaD == 0
		cfg.ZeroLambdaM = cmd.Flags().Changed("lambda-m") && cfg.LambdaM == 0
		cfg.NoMessages = cmd.Flags().Changed("message-rate") && cfg.MessageRate == 0
		if cfg.Warmup == 0 && cmd.Flags().Changed("warmup") {
			return errors.New("--warmup 0: give a positive warm-up or leave the flag out")
		}
		return nil
	}
	return cmd
}

func runSweep(ctx context.Context, out, errw io.Writer, base sim.Config, workers int, outDir, csvOut string) error {
	// Validate a copy: each point fills its own defaults (the warm-up
	// depends on its rates).
	check := base
	if err := check.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	if csvOut == "" {
		csvOut = filepath.Join(outDir, "sim_sweep.csv")
	}
	s := sim.DefaultSweep(base)
	t0 := time.Now()
	var mu sync.Mutex
	rs, err := sim.RunSweep(ctx, s, workers, func(i, n int, r sim.SweepResult) {
		mu.Lock()
		defer mu.Unlock()
		el := time.Since(t0)
		eta := time.Duration(float64(el) / float64(i) * float64(n-i))
		fmt.Fprintf(errw, "\r\033[K[%s] %d/%d points, %v elapsed, ETA %v (last: %s %s x=%g)",
			barOf(float64(i)/float64(n), 30), i, n, el.Round(time.Second), eta.Round(time.Second),
			r.Point.Figure, r.Point.Series, r.Point.X)
	})
	fmt.Fprintln(errw)
	if err != nil {
		return err
	}
	if err := sim.WriteCSV(csvOut, rs); err != nil {
		return err
	}
	files, err := sim.WritePlots(outDir, s, rs)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%d runs in %v\nwrote %s\nwrote %s\n", len(rs), time.Since(t0).Round(time.Second), csvOut, strings.Join(files, "\nwrote "))
	return nil
}

// progressBar draws a one-line progress bar on w (a terminal's stderr).
type progressBar struct {
	w     io.Writer
	start time.Time
	drawn bool
}

func (b *progressBar) update(now, end time.Duration, events uint64) {
	frac := float64(now) / float64(end)
	el := time.Since(b.start)
	eta := time.Duration(0)
	if frac > 0 {
		eta = time.Duration(float64(el) * (1 - frac) / frac)
	}
	fmt.Fprintf(b.w, "\r\033[K[%s] %5.1f%%  %v of %v simulated, %d M events (%.2f M/s), ETA %v",
		barOf(frac, 30), 100*frac, now.Round(time.Second), end.Round(time.Second), events/1e6,
		float64(events)/el.Seconds()/1e6, eta.Round(time.Second))
	b.drawn = true
}

func (b *progressBar) done() {
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}

func barOf(frac float64, width int) string {
	n := int(frac * float64(width))
	n = min(max(n, 0), width)
	return strings.Repeat("=", n) + strings.Repeat(" ", width-n)
}
