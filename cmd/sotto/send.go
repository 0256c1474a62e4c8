package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sottonet/sotto/client"
)

func sendCmd() *cobra.Command {
	var (
		f       clientFlags
		to      string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "send --provider MULTIADDR --to CONTACT [--state FILE] MESSAGE|-",
		Short: "Send one message to a contact and wait until it is delivered",
		Long: `Send one message (the argument, or stdin with -) to a contact string printed by
'sotto recv'. The client connects to its provider, sends Loopix cover traffic
while the message leaves in payload slots (cut into fragments if it is longer
than one packet), and waits: for a forward contact, until the recipient's
provider acknowledges every fragment (it stored them in the recipient's
mailbox; lost fragments are retransmitted over other paths); for a
receiver-anonymous contact, which cannot acknowledge, until every fragment was
sent. It exits non-zero if that does not happen within --timeout.

Without --state the client uses a fresh identity; with it, the identity,
provider and epoch clock of that file (as 'sotto recv' keeps them), and the
SURBs it spends are remembered. The epoch clock (--genesis, --epoch-period,
--epoch-grace, or --config) must be the network's.`,
		Example: "  sotto send --provider /ip4/127.0.0.1/tcp/4002/p2p/12D3KooW... --genesis 2026-01-01T00:00:00Z \\\n" +
			"      --to sotto1AQE... 'hello'\n  echo hello | sotto send --state bob.json --to sotto1AQI... -",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ct, err := client.ParseContact(to)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			body := []byte(args[0])
			if args[0] == "-" {
				const maxStdin = 4 << 20
				if body, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxStdin+1)); err != nil {
					return fmt.Errorf("reading the message from stdin: %w", err)
				}
				if len(body) > maxStdin {
					return fmt.Errorf("the message on stdin is longer than %d bytes", maxStdin)
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			st, log, rc, err := f.open(ctx, cmd)
			if err != nil {
				return err
			}
			defer func() {
				if err := rc.stop(st); err != nil {
					log.Warn("stopping the client", "err", err)
				}
				if err := st.save(f.state); err != nil {
					log.Warn("saving the state", "err", err)
				}
			}()
			start := time.Now()
			id, err := rc.Send(ctx, ct, body)
			if err != nil {
				return fmt.Errorf("sending: %w", err)
			}
			want := client.StateAcked
			if ct.Anonymous() {
				want = client.StateSent
			}
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				s, ok := rc.Status(id)
				switch {
				case !ok:
					return fmt.Errorf("message %s: the client forgot it", id)
				case s.State == client.StateFailed:
					return fmt.Errorf("message %s failed: %w", id, s.Err)
				case s.State == want || s.State == client.StateAcked:
					fmt.Fprintf(cmd.ErrOrStderr(), "message %s %s (%d bytes, %d fragments, %d packets) in %v\n",
						id, s.State, len(body), s.Fragments, s.Packets, time.Since(start).Round(10*time.Millisecond))
					return nil
				}
				select {
				case <-ctx.Done():
					if errors.Is(ctx.Err(), context.DeadlineExceeded) {
						return fmt.Errorf("message %s still %s after %v (%d of %d fragments acknowledged)",
							id, s.State, timeout, s.FragmentsAcked, s.Fragments)
					}
					return fmt.Errorf("message %s: interrupted while %s", id, s.State)
				case <-t.C:
				}
			}
		},
	}
	f.register(cmd.Flags(), "state file to take the identity, provider and epoch clock from, and to keep (created if missing, mode 0600)")
	cmd.Flags().StringVar(&to, "to", "", "the recipient's contact string (sotto1...), as 'sotto recv' prints it")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "give up (exit non-zero) if the message is not acknowledged (or, anonymous, sent) by then")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}
