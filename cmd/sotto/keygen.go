package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/keystore"
)

func keygenCmd() *cobra.Command {
	var (
		dataDir, cfgFile string
		genesis          string
		period, grace    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Create a node's identity and Sphinx keys in its data directory",
		Long: "Create the node's Ed25519 identity (also its libp2p key) if the data directory has\n" +
			"none, and X25519 Sphinx keys for the current and next three epochs; erase expired\n" +
			"Sphinx keys. Existing keys are kept, so running it again is safe. The epoch\n" +
			"clock (genesis, period, grace) comes from --config or the --genesis flags; without\n" +
			"a genesis only the identity is created.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ep := config.Default().Epoch
			if cfgFile != "" {
				c, err := config.Load(config.Sources{File: cfgFile})
				if err != nil {
					return err
				}
				ep = c.Epoch
				if dataDir == "" {
					dataDir = c.DataDir
				}
			}
			if genesis != "" {
				t, err := time.Parse(time.RFC3339, genesis)
				if err != nil {
					return fmt.Errorf("--genesis: want RFC 3339 (2026-01-01T00:00:00Z): %w", err)
				}
				ep.Genesis = t
			}
			if cmd.Flags().Changed("epoch-period") {
				ep.Period = period
			}
			if cmd.Flags().Changed("epoch-grace") {
				ep.Grace = grace
			}
			if dataDir == "" {
				return errors.New("no data directory: pass --data-dir or a --config with data_dir")
			}
			ks, created, err := keystore.Init(dataDir, rand.Reader)
			if err != nil {
				return err
			}
			defer ks.Close()
			out := cmd.OutOrStdout()
			pid, err := ks.PeerID()
			if err != nil {
				return err
			}
			verb := "kept"
			if created {
				verb = "created"
			}
			fmt.Fprintf(out, "identity %s (%s): %s\npeer ID: %s\n", verb, keystore.Dir(dataDir),
				hex.EncodeToString(ks.Identity().Public().(ed25519.PublicKey)), pid)
			if ep.Genesis.IsZero() {
				fmt.Fprintln(out, "no Sphinx keys: the epoch genesis is unknown (pass --genesis or --config)")
				return nil
			}
			clk, err := epoch.New(ep.Genesis, ep.Period, ep.Grace)
			if err != nil {
				return err
			}
			r, err := ks.Rotate(clk, time.Now(), rand.Reader)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Sphinx keys for epochs %v (created %v, erased %v)\n", ks.Epochs(), r.Created, r.Deleted)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "", "the node's data directory (default: data_dir of --config)")
	f.StringVar(&cfgFile, "config", "", "node config (YAML) to take the data directory and epoch clock from")
	f.StringVar(&genesis, "genesis", "", "network genesis, RFC 3339 (overrides the config)")
	f.DurationVar(&period, "epoch-period", epoch.DefaultPeriod, "epoch length (overrides the config)")
	f.DurationVar(&grace, "epoch-grace", config.Default().Epoch.Grace, "key grace after an epoch (overrides the config)")
	return cmd
}
