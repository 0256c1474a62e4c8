package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
		Use:   "send [--provider MULTIADDR] [--state FILE] --to CONTACT MESSAGE|-",
		Short: "Send one message to a contact and wait until it is delivered",
		Long: `Send one message (the argument, or stdin with -) to a contact string printed by
'sotto recv'. The client connects to its provider, sends Loopix cover traffic
while the message leaves in payload slots (cut into fragments if it is longer
than one packet), and waits: for a forward contact, until the recipient's
provider acknowledges every fragment (it stored them in the recipient's
mailbox; lost fragments are retransmitted over other paths); for a
receiver-anonymous contact, until the recipient's client acknowledges every
fragment end to end. It exits non-zero if the message failed (an anonymous
contact whose SURBs another sender used, say) or did not finish within
--timeout. A contact whose provider is not in the PKI document yet (a gossip
network still starting) is tried again until --timeout.

Without --state the client uses a fresh identity; with it, the identity,
provider and epoch clock of that file (as 'sotto recv' keeps them), the SURBs
it spends, and the message itself: it is in the file before it leaves, so a
send that is interrupted (Ctrl-C, SIGTERM, a crash) loses nothing. 'sotto send
--state FILE' without a message resumes every unfinished message in the file
and waits for them. The network's epoch clock is learned from the provider
unless --genesis (--epoch-period, --epoch-grace) or --config gives it.`,
		Example: "  sotto send --provider /ip4/127.0.0.1/tcp/4002/p2p/12D3KooW... --to sotto1AQE... 'hello'\n" +
			"  echo hello | sotto send --state bob.json --to sotto1AQI... -\n" +
			"  sotto send --state bob.json   # finish what an interrupted send left",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && f.state == "" {
				return errors.New("no message argument (MESSAGE, or - for stdin); without one, send resumes the messages in --state FILE")
			}
			var (
				ct   *client.Contact
				body []byte
				err  error
			)
			if len(args) == 1 {
				if to == "" {
					return errors.New("--to CONTACT is required to send a message")
				}
				if ct, err = client.ParseContact(to); err != nil {
					return fmt.Errorf("--to: %w", err)
				}
				body = []byte(args[0])
				if args[0] == "-" {
					const maxStdin = 4 << 20
					if body, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxStdin+1)); err != nil {
						return fmt.Errorf("reading the message from stdin: %w", err)
					}
					if len(body) > maxStdin {
						return fmt.Errorf("the message on stdin is longer than %d bytes", maxStdin)
					}
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			// Tries back off (doubling, capped at minutes): enough of them
			// that --timeout is what ends a send, not the count.
			f.maxTries = 20
			rc, err := f.start(ctx, cmd, nil)
			if err != nil {
				return err
			}
			defer func() {
				if err := rc.stop(); err != nil {
					rc.log.Warn("stopping the client", "err", err)
				}
			}()
			start := time.Now()
			var ids []client.MessageID
			if ct != nil {
				id, err := sendWhenKnown(ctx, rc.log, func() (client.MessageID, error) { return rc.Send(ctx, ct, body) })
				if err != nil {
					return fmt.Errorf("sending: %w", err)
				}
				where := "in memory: interrupted, it is lost"
				if f.state != "" {
					where = "in " + f.state + ": interrupted, 'sotto send --state' finishes it"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "message %s stored (%s)\n", id, where)
				ids = append(ids, id)
			} else {
				for _, s := range rc.Pending() {
					ids = append(ids, s.ID)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "resuming %d unfinished messages\n", len(ids))
			}
			return waitFinal(ctx, rc, ids, start, timeout, cmd.ErrOrStderr())
		},
	}
	f.register(cmd.Flags(), "state file to take the identity, provider and epoch clock from, and to keep the message in until it is delivered (created if missing, mode 0600)")
	cmd.Flags().StringVar(&to, "to", "", "the recipient's contact string (sotto1...), as 'sotto recv' prints it")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "give up (exit non-zero) if the message is not acknowledged by then (it stays in --state)")
	return cmd
}

// sendWhenKnown calls send until the contact's provider is in the PKI
// document the client holds, or ctx ends. On a gossip PKI a provider's
// descriptor reaches the nodes one by one: the document this client's
// provider serves in the first seconds of a network may lack the
// contact's provider (ErrUnknownProvider) until gossip has carried it
// there, and a send with --timeout 2m must not fail in its first second
// for that. Send fetches the document again before it returns that error;
// this waits between tries (1 s, doubling, at most 10 s). Every other
// error ends the send at once.
func sendWhenKnown(ctx context.Context, log *slog.Logger, send func() (client.MessageID, error)) (client.MessageID, error) {
	wait := time.Second
	for {
		id, err := send()
		if !errors.Is(err, client.ErrUnknownProvider) {
			return id, err
		}
		log.Warn("the contact's provider is not in the PKI document yet (the PKI may still be converging); trying again", "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return id, fmt.Errorf("%w (still so when the send gave up: %w)", err, context.Cause(ctx))
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// waitFinal waits until every message of ids is final and reports each.
func waitFinal(ctx context.Context, rc *runningClient, ids []client.MessageID, start time.Time, timeout time.Duration, w io.Writer) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var errs []error
	for len(ids) > 0 {
		rest := ids[:0]
		for _, id := range ids {
			s, ok := rc.Status(id)
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("message %s: the client forgot it", id))
			case s.State == client.StateFailed:
				errs = append(errs, fmt.Errorf("message %s failed: %w", id, s.Err))
			case s.State == client.StateAcked:
				fmt.Fprintf(w, "message %s acked: stored at the recipient's provider (%d fragments, %d packets) in %v\n",
					id, s.Fragments, s.Packets, time.Since(start).Round(10*time.Millisecond))
			case s.State == client.StateDelivered:
				fmt.Fprintf(w, "message %s delivered: sent through the contact's SURBs and acknowledged end to end by the recipient (%d fragments, %d packets) in %v\n",
					id, s.Fragments, s.Packets, time.Since(start).Round(10*time.Millisecond))
			default:
				rest = append(rest, id)
			}
		}
		ids = rest
		if len(ids) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			s, _ := rc.Status(ids[0])
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				errs = append(errs, fmt.Errorf("message %s still %s after %v (%d of %d fragments acknowledged); it stays in the state",
					ids[0], s.State, timeout, s.FragmentsAcked, s.Fragments))
			} else {
				errs = append(errs, fmt.Errorf("message %s: interrupted while %s; it stays in the state", ids[0], s.State))
			}
			return errors.Join(errs...)
		case <-t.C:
		}
	}
	return errors.Join(errs...)
}
