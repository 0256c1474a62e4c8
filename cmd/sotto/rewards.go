package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sottonet/sotto/internal/rewards"
)

func rewardsCmd() *cobra.Command {
	var addrs []string
	cmd := &cobra.Command{
		Use:   "rewards --metrics HOST:PORT[,HOST:PORT...]",
		Short: "Print the rewards report (one table per epoch) gathered from nodes' metrics",
		Long: "Scrape the /metrics of the given nodes (give them all: a node names itself there, and\n" +
			"providers running an accounting plugin say what it counts: sotto_rewards) and print one\n" +
			"table per epoch (the last four): node, role, work counted, auditor probes sent\n" +
			"through the node and returned, score, and the amount earned. Works for every design.\n" +
			"Each epoch is settled across the ledgers read: under the secret shopper a mix's score\n" +
			"is the median over the auditing providers' own measurements (sotto_audit_probes) and\n" +
			"the shopper ledgers' budgets are split by score; under the other designs what every\n" +
			"ledger pays is split by the work every node reported. Give every node: an auditor or\n" +
			"a mix left out is a vote or a share left out.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(addrs) == 0 {
				return fmt.Errorf("give the nodes' metrics addresses with --metrics")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			r := rewards.New(nil)
			for _, a := range addrs {
				if err := r.Scrape(ctx, a); err != nil {
					return err
				}
			}
			rewards.Write(cmd.OutOrStdout(), r.Tables())
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&addrs, "metrics", nil, "metrics addresses (host:port) of the network's nodes")
	return cmd
}
