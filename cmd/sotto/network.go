package main

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/internal/netinit"
)

func networkCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Create a network: its network file, and every host's config and keys",
	}
	cmd.AddCommand(networkInitCmd())
	return cmd
}

func networkInitCmd() *cobra.Command {
	var (
		n                  config.Network
		genesis, hostsFile string
		out, dataDir       string
		endorseFor         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "init --name NAME --hosts HOSTS.yaml --out DIR",
		Short: "Write the network file and, for each host, its node config and keys",
		Long: `Write DIR/network.yaml, the one file every node and client of the network reads
(name, epoch clock, geometry, Loopix rates, PKI roots and bootstrap, providers), and
with --hosts, for each host DIR/NAME/ with node.yaml (0600), a copy of network.yaml and
data/keys (0700/0600): copy DIR/NAME/node.yaml and network.yaml to /etc/sotto/ and
DIR/NAME/data/ to the host's data_dir, then run ` + "`sotto node --config /etc/sotto/node.yaml`" + `.
DIR/operator.key is the operator's private key (it endorses nodes under pki-gossip,
signs documents under pki-static): keep it offline, never on a node.

The hosts file is YAML:
  hosts:
    - {name: mix-1, role: mix, address: 10.0.0.1}
    - {name: provider-1, role: provider, address: provider1.example.org}
Optional per host: node_port (4100; TCP and QUIC), pki_port (4101), ws_port (4102,
providers), metrics (127.0.0.1:9464), data_dir (default --data-dir).
An IP address is listened on; a DNS name is announced while listening on 0.0.0.0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g := time.Now().UTC().Truncate(time.Hour)
			if genesis != "" {
				t, err := time.Parse(time.RFC3339, genesis)
				if err != nil {
					return fmt.Errorf("--genesis: want RFC 3339 (2026-01-01T00:00:00Z): %w", err)
				}
				g = t
			}
			n.Genesis = g
			if !cmd.Flags().Changed("layers") {
				n.Geometry.Layers = n.Geometry.Hops
			}
			var hosts []netinit.Host
			if hostsFile != "" {
				var err error
				if hosts, err = netinit.ReadHosts(hostsFile); err != nil {
					return err
				}
			}
			res, err := netinit.Write(netinit.Options{Hosts: hosts, Network: n, Out: out, DataDir: dataDir,
				EndorseFor: endorseFor, Rand: rand.Reader, WriteKeys: true})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "network file: %s\n", res.NetworkFile)
			if res.OperatorKey != "" {
				fmt.Fprintf(w, "operator key: %s (keep it offline)\n", res.OperatorKey)
			}
			for _, nr := range res.Nodes {
				fmt.Fprintf(w, "%-12s %-8s %s  (copy %s/)\n", nr.Name, nr.Role, nr.Addr, nr.Dir)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&n.Name, "name", "", "network name (at most 64 bytes)")
	f.StringVar(&genesis, "genesis", "", "start of epoch 0, RFC 3339 (default: the start of this hour, UTC)")
	f.DurationVar(&n.Period, "period", 20*time.Minute, "epoch length")
	f.DurationVar(&n.Grace, "grace", 2*time.Minute, "how long a key is accepted after its epoch")
	f.IntVar(&n.Geometry.Hops, "hops", 3, "mix hops of a path")
	f.IntVar(&n.Geometry.Layers, "layers", 3, "mix layers (default: --hops)")
	f.IntVar(&n.Geometry.PayloadLen, "payload", 2048, "payload bytes per packet")
	f.Float64Var(&n.Rates.Mu, "mu", 2, "per-hop delay rate μ, per second (mean delay 1/μ s)")
	f.Float64Var(&n.Rates.LambdaP, "lambda-p", 2, "client payload rate λP, per second")
	f.Float64Var(&n.Rates.LambdaL, "lambda-l", 1, "client loop cover rate λL, per second")
	f.Float64Var(&n.Rates.LambdaD, "lambda-d", 1, "client drop cover rate λD, per second")
	f.Float64Var(&n.Rates.LambdaM, "lambda-m", 1, "mix loop cover rate λM, per second")
	f.StringVar(&n.PKI.Plugin, "pki", config.PKIGossip, "PKI plugin: pki-gossip or pki-static")
	f.StringVar(&n.PKI.Admission, "admission", "endorsed", "pki-gossip admission: endorsed, open or none")
	f.DurationVar(&endorseFor, "endorse-for", 365*24*time.Hour, "lifetime of the operator's endorsements")
	f.StringVar(&hostsFile, "hosts", "", "hosts file (YAML, see above)")
	f.StringVar(&out, "out", "", "directory to write (must not exist or be empty)")
	f.StringVar(&dataDir, "data-dir", netinit.DefaultDataDir, "data directory on the hosts ({name} is replaced by the host's name)")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}
