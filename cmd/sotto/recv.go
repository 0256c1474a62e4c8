package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/client/p2p"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/host/config"
)

// cliStateVersion is the version of the state file of `sotto recv` and
// `sotto send --state`.
const cliStateVersion = 1

// cliState is what the command-line client keeps between runs, in one
// owner-only JSON file: its identity (the Ed25519 seed: it authenticates
// the client to its provider and names its mailbox), where its provider
// is, the network's epoch clock, and the client library's own state (SURB
// keys of its anonymous contacts, messages being reassembled, IDs already
// delivered).
type cliState struct {
	Version  int             `json:"version"`
	Identity []byte          `json:"identity"`
	Provider string          `json:"provider,omitempty"`
	Genesis  time.Time       `json:"genesis,omitzero"`
	Period   time.Duration   `json:"epoch_period,omitempty"`
	Grace    time.Duration   `json:"epoch_grace,omitempty"`
	Client   json.RawMessage `json:"client,omitempty"`
}

// loadCLIState reads a state file, or makes a fresh identity when path is
// empty or does not exist yet.
func loadCLIState(path string) (*cliState, error) {
	fresh := func() (*cliState, error) {
		_, sk, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating an identity: %w", err)
		}
		return &cliState{Version: cliStateVersion, Identity: sk.Seed()}, nil
	}
	if path == "" {
		return fresh()
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fresh()
	}
	if err != nil {
		return nil, fmt.Errorf("reading the state: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("state file %s is readable by others (mode %v): it holds the client's keys; chmod 600 it", path, fi.Mode().Perm())
	}
	var st cliState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if st.Version != cliStateVersion {
		return nil, fmt.Errorf("state file %s: version %d, this sotto reads %d", path, st.Version, cliStateVersion)
	}
	if len(st.Identity) != ed25519.SeedSize {
		return nil, fmt.Errorf("state file %s: identity of %d bytes, want %d", path, len(st.Identity), ed25519.SeedSize)
	}
	return &st, nil
}

// save writes the state owner-only, through a temporary file and a rename,
// so that a crash leaves the old state or the new one.
func (st *cliState) save(path string) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("saving the state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("saving the state: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("saving the state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving the state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("saving the state: %w", err)
	}
	return nil
}

// clientFlags are the flags send and recv share: where the provider is and
// the network's epoch clock.
type clientFlags struct {
	provider   string
	state      string
	genesis    string
	period     time.Duration
	grace      time.Duration
	nodeConfig string
	verbose    bool
}

func (f *clientFlags) register(fs *pflag.FlagSet, stateHelp string) {
	fs.StringVar(&f.provider, "provider", "", "the provider's libp2p multiaddr, ending in /p2p/PEER-ID (kept in --state)")
	fs.StringVar(&f.state, "state", "", stateHelp)
	fs.StringVar(&f.genesis, "genesis", "", "the network's genesis, RFC 3339 (kept in --state)")
	fs.DurationVar(&f.period, "epoch-period", epoch.DefaultPeriod, "the network's epoch length")
	fs.DurationVar(&f.grace, "epoch-grace", config.Default().Epoch.Grace, "the network's key grace period after an epoch")
	fs.StringVar(&f.nodeConfig, "config", "", "a node config (YAML) of the network to take the epoch clock from")
	fs.BoolVar(&f.verbose, "verbose", false, "log to stderr at debug level (default: warnings only)")
}

// resolve fills the provider and the clock into st: flags first, then a
// node config, then what st already holds, then defaults.
func (f *clientFlags) resolve(fs *pflag.FlagSet, st *cliState) error {
	if f.provider != "" {
		st.Provider = f.provider
	}
	if st.Provider == "" {
		return errors.New("no provider: pass --provider /ip4/.../tcp/.../p2p/PEER-ID")
	}
	if f.nodeConfig != "" {
		c, err := config.Load(config.Sources{File: f.nodeConfig})
		if err != nil {
			return err
		}
		st.Genesis, st.Period, st.Grace = c.Epoch.Genesis, c.Epoch.Period, c.Epoch.Grace
	}
	if f.genesis != "" {
		t, err := time.Parse(time.RFC3339, f.genesis)
		if err != nil {
			return fmt.Errorf("--genesis: want RFC 3339 (2026-01-01T00:00:00Z): %w", err)
		}
		st.Genesis = t
	}
	if fs.Changed("epoch-period") || st.Period == 0 {
		st.Period = f.period
	}
	if fs.Changed("epoch-grace") || st.Grace == 0 {
		st.Grace = f.grace
	}
	if st.Genesis.IsZero() {
		return errors.New("the network's epoch clock is unknown: pass --genesis (and --epoch-period, --epoch-grace) or --config NODE.yaml")
	}
	return nil
}

// open loads the state the flags name, fills it from the flags, and starts
// the client: what send and recv both do first.
func (f *clientFlags) open(ctx context.Context, cmd *cobra.Command) (*cliState, *slog.Logger, *runningClient, error) {
	st, err := loadCLIState(f.state)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := f.resolve(cmd.Flags(), st); err != nil {
		return nil, nil, nil, err
	}
	log := f.logger(cmd.ErrOrStderr())
	rc, err := startClient(ctx, st, log, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	return st, log, rc, nil
}

func (f *clientFlags) logger(w io.Writer) *slog.Logger {
	lvl := slog.LevelWarn
	if f.verbose {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// runningClient is a client running against its provider.
type runningClient struct {
	*client.Client
	conn   *p2p.Conn
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startClient dials the provider and runs a client from st.
func startClient(ctx context.Context, st *cliState, log *slog.Logger, onStatus func(client.MessageStatus)) (*runningClient, error) {
	ai, err := p2p.ParseProviderAddr(st.Provider)
	if err != nil {
		return nil, err
	}
	pub, err := ai.ID.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("provider peer ID %s: %w", ai.ID, err)
	}
	raw, err := pub.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("provider peer ID %s is not an Ed25519 key, so it is not a Sotto node's identity", ai.ID)
	}
	clk, err := epoch.New(st.Genesis, st.Period, st.Grace)
	if err != nil {
		return nil, err
	}
	id := ed25519.NewKeyFromSeed(st.Identity)
	conn, err := p2p.Dial(ctx, p2p.Options{Identity: id, Provider: ai, Logger: log})
	if err != nil {
		return nil, err
	}
	c, err := client.New(client.Config{Identity: id, Provider: conn, ProviderID: [32]byte(raw), Clock: clk,
		Logger: log, OnStatus: onStatus})
	if err != nil {
		conn.Close()
		return nil, err
	}
	if len(st.Client) > 0 {
		if err := c.LoadState(st.Client); err != nil {
			conn.Close()
			return nil, err
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	rc := &runningClient{Client: c, conn: conn, cancel: cancel}
	rc.wg.Go(func() {
		if err := c.Run(rctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("client stopped", "err", err)
		}
	})
	return rc, nil
}

// stop stops the client, keeps its state in st and closes the connection.
func (rc *runningClient) stop(st *cliState) error {
	rc.cancel()
	rc.wg.Wait()
	b, err := rc.MarshalState()
	if err == nil {
		st.Client = b
	}
	return errors.Join(err, rc.conn.Close())
}

func recvCmd() *cobra.Command {
	var (
		f         clientFlags
		anonymous bool
		wait      time.Duration
		count     int
		surbs     int
	)
	cmd := &cobra.Command{
		Use:   "recv --provider MULTIADDR --state FILE [--anonymous] [--wait D]",
		Short: "Print a contact, then receive messages sent to it",
		Long: `Receive messages. The first run creates the client's identity and keeps it, with the
provider's address, the network's epoch clock and the client's state, in the
--state file (owner-only, mode 0600); later runs load it, so flags given once
need not be repeated.

The first line on stdout is a contact string to hand to senders: by default a
forward contact (the provider and mailbox of this client); with --anonymous, a
receiver-anonymous contact carrying SURBs into a fresh SURB mailbox, so the
sender learns neither this client's provider nor its route (each SURB carries
one packet; the contact works until its epoch ends). Then every message that
arrives is printed on stdout, followed by a newline, until --wait elapses,
--count messages arrived, or Ctrl-C. The state is saved after each message and
on exit. Logs go to stderr.`,
		Example: "  sotto recv --provider /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW... --genesis 2026-01-01T00:00:00Z \\\n" +
			"      --state alice.json --wait 1m\n  sotto recv --state alice.json --anonymous --count 1",
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
			st, log, rc, err := f.open(ctx, cmd)
			if err != nil {
				return err
			}
			stopped := false
			defer func() {
				if !stopped {
					_ = rc.stop(st)
					_ = st.save(f.state)
				}
			}()
			ct, err := rc.NewContact(ctx, client.ContactOptions{Anonymous: anonymous, SURBs: surbs})
			if err != nil {
				return fmt.Errorf("making a contact: %w", err)
			}
			// The anonymous contact's SURB keys live in the client's state:
			// save them before anyone can use the contact.
			if b, err := rc.MarshalState(); err == nil {
				st.Client = b
			}
			if err := st.save(f.state); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, ct.String())
			fmt.Fprintln(cmd.ErrOrStderr(), "waiting for messages (Ctrl-C to stop)")
			got := 0
		loop:
			for count == 0 || got < count {
				select {
				case <-ctx.Done():
					break loop
				case m, ok := <-rc.Messages():
					if !ok {
						break loop
					}
					got++
					body := m.Body
					if len(body) == 0 || body[len(body)-1] != '\n' {
						body = append(body, '\n')
					}
					if _, err := out.Write(body); err != nil {
						return err
					}
					if b, err := rc.MarshalState(); err == nil {
						st.Client = b
						if err := st.save(f.state); err != nil {
							log.Warn("saving the state", "err", err)
						}
					}
				}
			}
			stopped = true
			if err := rc.stop(st); err != nil {
				log.Warn("stopping the client", "err", err)
			}
			// --wait, --count and Ctrl-C are all normal ways to stop.
			return st.save(f.state)
		},
	}
	f.register(cmd.Flags(), "state file (created if missing, mode 0600): identity, provider, epoch clock, client state")
	cmd.Flags().BoolVar(&anonymous, "anonymous", false, "print a receiver-anonymous contact (SURBs into a SURB mailbox) instead of a forward one")
	cmd.Flags().IntVar(&surbs, "surbs", client.DefaultContactSURBs, "with --anonymous: SURBs in the contact (one per packet it can receive)")
	cmd.Flags().DurationVar(&wait, "wait", 0, "stop after this long (0: until Ctrl-C)")
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many messages (0: no limit)")
	return cmd
}
