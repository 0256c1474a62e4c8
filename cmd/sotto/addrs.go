package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/keystore"
)

// nodeAddrsCmd prints what other operators and clients need from a node:
// its full multiaddrs (what clients of a provider pass to --provider) and
// its PKI bootstrap address (what goes in the network file's
// pki.bootstrap). It reads the config and the keys; it starts nothing.
func nodeAddrsCmd() *cobra.Command {
	var cfgFile string
	cmd := &cobra.Command{
		Use:   "addrs --config node.yaml",
		Short: "Print the node's full multiaddrs and its PKI bootstrap address",
		Long: "Print the node's libp2p multiaddrs with /p2p/PEER-ID (its announce addresses, or\n" +
			"its listen addresses when it has none) and, under pki-gossip, the PKI plugin's\n" +
			"bootstrap address, whose peer ID is derived from the node's identity key.\n" +
			"A wildcard listen address (0.0.0.0) cannot be printed: set announce.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := config.Load(config.Sources{File: cfgFile, Flags: cmd.Flags()})
			if err != nil {
				return err
			}
			ks, err := keystore.Open(c.DataDir)
			if err != nil {
				return err
			}
			defer ks.Close()
			pid, err := ks.PeerID()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			addrs := c.Announce
			if len(addrs) == 0 {
				addrs = c.Listen
			}
			for _, a := range addrs {
				if strings.Contains(a, "/0.0.0.0/") || strings.Contains(a, "/::/") {
					fmt.Fprintf(w, "node  %s (a wildcard: set announce to the address others reach)\n", a)
					continue
				}
				fmt.Fprintf(w, "node  %s/p2p/%s\n", a, pid)
			}
			if c.Plugins.PKI.Builtin == config.PKIGossip {
				ppid, err := ks.PKIPeerID()
				if err != nil {
					return err
				}
				listen := []string{config.DefaultGossipListen}
				if l, ok := c.Plugins.PKI.Config["listen"].([]any); ok && len(l) > 0 {
					listen = nil
					for _, v := range l {
						listen = append(listen, fmt.Sprint(v))
					}
				}
				for _, a := range listen {
					fmt.Fprintf(w, "pki   %s/p2p/%s\n", a, ppid)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "node config file (YAML)")
	config.RegisterFlags(cmd.Flags())
	return cmd
}
