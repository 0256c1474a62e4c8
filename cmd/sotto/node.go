package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/keystore"
	"github.com/sottonet/sotto/host/node"
	"github.com/sottonet/sotto/host/plugin"
	"github.com/sottonet/sotto/interfaces"
)

func nodeCmd() *cobra.Command {
	var (
		cfgFile string
		check   bool
	)
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a mix node or provider",
		Long: "Run a mix node or provider. The config is read from --config (YAML), then from\n" +
			"SOTTO_ environment variables (SOTTO_MIX__LAYER sets mix.layer), then from flags.\n" +
			"With --check, load and validate the config and the keys, start each configured\n" +
			"plugin as the node would (configured, with host services), ask it what it is,\n" +
			"stop it, print every problem by slot and exit non-zero if there is any. Plugins\n" +
			"open what the node would (the storage database, the PKI's listeners): check a\n" +
			"node's config while the node is stopped.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Catch SIGTERM first: a node asked to stop while it starts must
			// still stop its plugins.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			problems, summary := checkNode(cfgFile, cmd)
			if check {
				plugProblems, plugSummary := checkPlugins(ctx, cfgFile, cmd, problems)
				problems = append(problems, plugProblems...)
				summary = strings.Join(append([]string{summary}, plugSummary...), "\n")
			}
			for _, p := range problems {
				fmt.Fprintln(cmd.ErrOrStderr(), p)
			}
			if len(problems) > 0 {
				return fmt.Errorf("%d problem(s) in the config, keys and plugins", len(problems))
			}
			fmt.Fprintln(cmd.OutOrStdout(), summary)
			if check {
				return nil
			}
			return runNode(ctx, cfgFile, cmd)
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "node config file (YAML)")
	cmd.Flags().BoolVar(&check, "check", false, "only check the config, the keys and the plugins, then exit")
	cmd.Flags().String("log-level", "info", "log level: debug, info, warn or error")
	config.RegisterFlags(cmd.Flags())
	cmd.AddCommand(nodeAddrsCmd())
	return cmd
}

// checkNode loads and validates the config, then opens the keystore, and
// returns every problem found, one per line.
func checkNode(cfgFile string, cmd *cobra.Command) (problems []error, summary string) {
	c, err := config.Load(config.Sources{File: cfgFile, Flags: cmd.Flags()})
	if err != nil {
		return []error{err}, ""
	}
	problems = flatten(c.Validate())
	problems = append(problems, flatten(c.CheckPKIConfig())...)
	for _, slot := range []struct {
		path string
		s    config.PluginSlot
	}{{"plugins.pki", c.Plugins.PKI}, {"plugins.storage", c.Plugins.Storage}, {"plugins.accounting", c.Plugins.Accounting}} {
		if _, ok := builtins[slot.s.Builtin]; slot.s.Builtin != "" && !ok {
			problems = append(problems, fmt.Errorf("%s.builtin: no built-in plugin %q in this binary (have: %s)",
				slot.path, slot.s.Builtin, strings.Join(builtinNames(), ", ")))
		}
		if slot.s.Path != "" {
			if fi, err := os.Stat(slot.s.Path); err != nil {
				problems = append(problems, fmt.Errorf("%s.path: %w", slot.path, err))
			} else if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
				problems = append(problems, fmt.Errorf("%s.path: %s is not an executable file (mode %v)", slot.path, slot.s.Path, fi.Mode()))
			}
		}
	}
	if c.DataDir == "" {
		return problems, ""
	}
	ks, err := keystore.Open(c.DataDir)
	if err != nil {
		return append(problems, flatten(err)...), ""
	}
	defer ks.Close()
	pid, err := ks.PeerID()
	if err != nil {
		problems = append(problems, err)
	}
	if clk, err := epoch.New(c.Epoch.Genesis, c.Epoch.Period, c.Epoch.Grace); err == nil && !c.Epoch.Genesis.IsZero() {
		// Only the current epoch's key is required: a running node creates
		// the next ones itself as epochs pass (keystore.Rotate).
		if now := clk.At(time.Now()); !slices.Contains(ks.Epochs(), now) {
			problems = append(problems, fmt.Errorf("keystore: no Sphinx key for the current epoch %d in %s (run `sotto keygen --config ...`)", now, keystore.Dir(c.DataDir)))
		}
	}
	summary = fmt.Sprintf("config and keys OK: %s", c.Role)
	summary += fmt.Sprintf(" on network %q, peer ID %s", c.Network, pid)
	return problems, summary
}

// checkPlugins starts each configured plugin as runNode would (storage
// first, then the others with host services: the clock and a KV in that
// storage), asks it what it is (its report, and Info for accounting),
// stops it, and returns one problem per slot that failed, each naming its
// slot, and one summary line per slot that started. A slot that already
// has a problem in known (the config's) is not started.
func checkPlugins(ctx context.Context, cfgFile string, cmd *cobra.Command, known []error) (problems []error, summary []string) {
	c, err := config.Load(config.Sources{File: cfgFile, Flags: cmd.Flags()})
	if err != nil {
		return nil, nil // checkNode reported it
	}
	if c.Plugins.PKI.Builtin == config.PKIGossip && c.Plugins.PKI.Config != nil {
		// The check starts the PKI to see that it accepts its config; it
		// does not join the network (a node that runs does).
		delete(c.Plugins.PKI.Config, "bootstrap")
	}
	if ks, err := keystore.Open(c.DataDir); err == nil {
		err = withPKIIdentity(&c, ks)
		ks.Close()
		if err != nil {
			return []error{err}, nil
		}
	}
	// Plugins' own warnings matter here; their routine lines do not.
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	host := &interfaces.Host{}
	if clk, err := epoch.New(c.Epoch.Genesis, c.Epoch.Period, c.Epoch.Grace); err == nil {
		host.Clock = clk
	}
	var started []*plugin.Plugin
	defer func() {
		for _, p := range slices.Backward(started) {
			_ = p.Close()
		}
	}()
	check := func(kind string, slot config.PluginSlot) *plugin.Plugin {
		path := "plugins." + kind
		for _, k := range known {
			if m := k.Error(); strings.HasPrefix(m, path+".") || strings.HasPrefix(m, path+":") {
				return nil // reported already, e.g. an unknown built-in
			}
		}
		if !slot.IsSet() {
			return nil
		}
		pc, err := slot.PluginConfig(kind)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", path, err))
			return nil
		}
		opts := plugin.Options{Logger: log}
		if kind != "storage" {
			opts.Host = host
		}
		p, err := plugin.Start(ctx, pc, opts)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", path, err))
			return nil
		}
		started = append(started, p)
		info := p.Info()
		line := fmt.Sprintf("%s: %s plugin %s", path, info.Kind, info.Name)
		if info.Version != "" {
			line += " " + info.Version
		}
		line += " started and configured"
		if kind == "accounting" {
			ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var e uint64
			if host.HasClock() {
				e = host.Clock.At(time.Now())
			}
			r, err := p.Accounting().Info(ictx, &interfaces.AccountingInfoRequest{Epoch: e})
			switch {
			case err != nil:
				problems = append(problems, fmt.Errorf("%s: Info: %w", path, err))
				return p
			case r.Scheme == "":
				problems = append(problems, fmt.Errorf("%s: Info names no scheme", path))
				return p
			case len(r.Params) > interfaces.MaxAccountingLen:
				problems = append(problems, fmt.Errorf("%s: Info params of %d bytes do not fit a descriptor (at most %d)", path, len(r.Params), interfaces.MaxAccountingLen))
				return p
			}
			line += fmt.Sprintf(", scheme %q", r.Scheme)
		}
		summary = append(summary, line)
		return p
	}
	if s := check("storage", c.Plugins.Storage); s != nil {
		host.KV = s.Storage()
	}
	check("pki", c.Plugins.PKI)
	check("accounting", c.Plugins.Accounting)
	return problems, summary
}

// flatten lists the leaves of a tree of joined errors.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// runNode runs a node from its config until ctx ends (SIGINT or SIGTERM),
// then shuts it down gracefully and stops its plugins.
func runNode(ctx context.Context, cfgFile string, cmd *cobra.Command) error {
	c, err := config.Load(config.Sources{File: cfgFile, Flags: cmd.Flags()})
	if err != nil {
		return err
	}
	if err := errors.Join(c.Validate(), c.CheckPKIConfig()); err != nil {
		return err
	}
	level, err := logLevel(cmd)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	ks, err := keystore.Open(c.DataDir)
	if err != nil {
		return err
	}
	defer ks.Close()
	if err := withPKIIdentity(&c, ks); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Removed after the plugins below have stopped (defers run last first).
	sockets, removeSockets, err := pluginSocketDir(log)
	if err != nil {
		return err
	}
	defer removeSockets()
	var plugins []*plugin.Plugin
	defer func() {
		for _, p := range slices.Backward(plugins) {
			if err := p.Close(); err != nil {
				log.Warn("stopping plugin", "err", err)
			}
		}
	}()
	clk, err := epoch.New(c.Epoch.Genesis, c.Epoch.Period, c.Epoch.Grace)
	if err != nil {
		return fmt.Errorf("epoch: %w", err)
	}
	// Plugins other than storage are offered host services: the clock, and
	// a KV under their slot in the storage plugin's store.
	host := &interfaces.Host{Clock: clk}
	start := func(kind string, slot config.PluginSlot) (*plugin.Plugin, error) {
		pc, err := slot.PluginConfig(kind)
		if err != nil {
			return nil, err
		}
		opts := plugin.Options{Logger: log, Registerer: reg, Env: []string{"TMPDIR=" + sockets}}
		if kind != "storage" {
			opts.Host = host
		}
		p, err := plugin.Start(ctx, pc, opts)
		if err != nil {
			return nil, fmt.Errorf("plugins.%s: %w", kind, err)
		}
		plugins = append(plugins, p)
		return p, nil
	}
	storage, err := start("storage", c.Plugins.Storage)
	if err != nil {
		return err
	}
	host.KV = storage.Storage()
	pki, err := start("pki", c.Plugins.PKI)
	if err != nil {
		return err
	}
	opts := node.Options{Config: &c, Keys: ks, Storage: storage.Storage(), PKI: pki.PKI(), Logger: log, Registry: reg}
	if c.Plugins.Accounting.IsSet() {
		acc, err := start("accounting", c.Plugins.Accounting)
		if err != nil {
			return err
		}
		opts.Accounting = acc.Accounting()
	}
	n, err := node.New(opts)
	if err != nil {
		return err
	}
	return n.Run(ctx)
}

// logLevel reads the --log-level flag (debug, info, warn, error).
func logLevel(cmd *cobra.Command) (slog.Level, error) {
	var l slog.Level
	s, _ := cmd.Flags().GetString("log-level")
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("--log-level: %w", err)
	}
	return l, nil
}
