package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/keystore"
)

// errNotImplemented: `sotto node` checks its config and keys but cannot run
// a node yet (issue 5).
var errNotImplemented = errors.New("running the node is not implemented yet; only --check works")

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
			"With --check, load and validate the config and the keys, print every problem and\n" +
			"exit non-zero if there is any.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			problems, summary := checkNode(cfgFile, cmd)
			for _, p := range problems {
				fmt.Fprintln(cmd.ErrOrStderr(), p)
			}
			if len(problems) > 0 {
				return fmt.Errorf("%d problem(s) in the config and keys", len(problems))
			}
			fmt.Fprintln(cmd.OutOrStdout(), summary)
			if check {
				return nil
			}
			return errNotImplemented
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "node config file (YAML)")
	cmd.Flags().BoolVar(&check, "check", false, "only check the config and keys")
	config.RegisterFlags(cmd.Flags())
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
	if c.Role == config.RoleMix {
		summary += fmt.Sprintf(" in layer %d", c.Mix.Layer)
	}
	summary += fmt.Sprintf(" on network %q, peer ID %s", c.Network, pid)
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
