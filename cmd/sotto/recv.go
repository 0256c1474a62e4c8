package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sottonet/sotto/client"
)

// flushTimeout bounds how long recv waits, before it stops, for the
// end-to-end acknowledgements it owes to leave.
const flushTimeout = 5 * time.Second

func recvCmd() *cobra.Command {
	var (
		f         clientFlags
		anonymous bool
		noCard    bool
		forName   string
		wait      time.Duration
		count     int
		surbs     int
	)
	cmd := &cobra.Command{
		Use:   "recv --state FILE [--provider MULTIADDR] [--anonymous] [--wait D]",
		Short: "Print a contact, then receive messages sent to it",
		Long: `Receive messages. The first run creates the client's identity and keeps it, with the
provider's address, the network's epoch clock (learned from the provider unless
given) and the client's state, in the --state file (owner-only, mode 0600,
written atomically on every change, locked while a client uses it); later
runs load it, so flags given once need not be repeated.

The first line on stdout is a contact string to hand to senders: by default a
forward contact (the provider and mailbox of this client); with --anonymous, a
receiver-anonymous contact carrying SURBs into a fresh SURB mailbox, so the
sender learns neither this client's provider nor its route (each SURB carries
one packet; the contact works for the current epoch and the next two; make
one per sender, --for NAME). Then every message that arrives is printed on
stdout, followed by a newline, until --wait elapses, --count messages arrived,
or Ctrl-C. A message is deleted at the provider only once it is in the state
file, and leaves the state only once printed: a crash loses none. Logs go to
stderr, with a line per message saying how it came: end to end through the
Double Ratchet (the contact carries this user's messaging card, and senders
start a session from it), or sealed to the contact's key only.`,
		Example: "  sotto recv --provider /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW... --state alice.json --wait 1m\n" +
			"  sotto recv --state alice.json --anonymous --for bob --count 1",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.state == "" {
				return errors.New("--state FILE is required: it keeps the identity whose mailbox the contact names")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if wait > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, wait)
				defer cancel()
			}
			rc, err := f.start(ctx, cmd, nil)
			if err != nil {
				return err
			}
			stopped := false
			defer func() {
				if !stopped {
					_ = rc.stop()
				}
			}()
			ct, err := rc.NewContact(ctx, client.ContactOptions{Anonymous: anonymous, SURBs: surbs, For: forName, NoCard: noCard})
			if err != nil {
				return fmt.Errorf("making a contact: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, ct.String())
			fmt.Fprintln(cmd.ErrOrStderr(), "waiting for messages (Ctrl-C to stop)")
			for got := 0; count == 0 || got < count; got++ {
				m, err := rc.Receive(ctx)
				if err != nil {
					break // --wait, Ctrl-C, or the client stopped
				}
				fmt.Fprintln(cmd.ErrOrStderr(), describeMessage(m))
				body := m.Body
				if len(body) == 0 || body[len(body)-1] != '\n' {
					body = append(body, '\n')
				}
				if _, err := out.Write(body); err != nil {
					return err
				}
				if err := rc.Done(m.ID); err != nil {
					rc.log.Warn("saving the state", "err", err)
				}
			}
			// Senders to anonymous contacts wait for this client's
			// end-to-end acknowledgements: let them leave.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			if err := rc.Flush(fctx); err != nil {
				rc.log.Warn("stopping before every acknowledgement left", "err", err)
			}
			cancel()
			stopped = true
			// --wait, --count and Ctrl-C are all normal ways to stop.
			return rc.stop()
		},
	}
	f.register(cmd.Flags(), "state file (created if missing, mode 0600): identity, provider, epoch clock, client state")
	cmd.Flags().BoolVar(&anonymous, "anonymous", false, "print a receiver-anonymous contact (SURBs into a SURB mailbox) instead of a forward one")
	cmd.Flags().StringVar(&forName, "for", "", "whom the contact is for; messages through an anonymous contact name it")
	cmd.Flags().BoolVar(&noCard, "no-card", false, "leave the messaging card (identity keys) out of the contact, so it cannot be linked to this user's other contacts; messages through it are sealed to its HPKE key only, without the ratchet's forward secrecy")
	cmd.Flags().IntVar(&surbs, "surbs", client.DefaultContactSURBs, "with --anonymous: SURBs in the contact per epoch (one per packet it can receive)")
	cmd.Flags().DurationVar(&wait, "wait", 0, "stop after this long (0: until Ctrl-C)")
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many messages (0: no limit)")
	return cmd
}

// describeMessage says, on stderr, how a message came: through the
// messaging layer (the ratchet, from the sender its card names) or sealed
// to this client's HPKE key only (a sender without a messaging layer).
func describeMessage(m client.Message) string {
	if m.Sender == nil {
		return fmt.Sprintf("message %s: sealed to this client's key only (no ratchet: the sender has no messaging layer)", m.ID)
	}
	return fmt.Sprintf("message %s: end-to-end through the ratchet, from %x", m.ID, m.Sender[:min(8, len(m.Sender))])
}
