package demo

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/client/p2p"
	"github.com/sottonet/sotto/internal/localnet"
)

// peer is one demo user: a client of a provider, which may be stopped
// (its state saved to a file) and started again.
type peer struct {
	name     string
	identity ed25519.PrivateKey
	prov     *localnet.Node
	state    string // file its state is saved to while it is offline
	log      *slog.Logger
	tr       *tracker
	newCfg   func(*peer) client.Config

	mu     sync.Mutex
	c      *client.Client
	conn   *p2p.Conn
	cancel context.CancelFunc
	wg     sync.WaitGroup
	past   client.Stats   // summed over earlier runs
	wallet *meteredWallet // kept across restarts (a paying design or the shopper)
}

func newPeer(name string, prov *localnet.Node, stateFile string, log *slog.Logger, tr *tracker, newCfg func(*peer) client.Config) (*peer, error) {
	_, id, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("demo: %s identity: %w", name, err)
	}
	return &peer{name: name, identity: id, prov: prov, state: stateFile, log: log.With("client", name), tr: tr, newCfg: newCfg}, nil
}

// start dials the provider and runs a client, loading the saved state if
// there is one.
func (p *peer) start(ctx context.Context) error {
	ai, err := p2p.ParseProviderAddr(p.prov.Addr)
	if err != nil {
		return err
	}
	conn, err := p2p.Dial(ctx, p2p.Options{Identity: p.identity, Provider: ai, Logger: p.log})
	if err != nil {
		return fmt.Errorf("demo: %s: %w", p.name, err)
	}
	cfg := p.newCfg(p)
	cfg.Identity, cfg.Provider, cfg.ProviderID, cfg.Logger = p.identity, conn, p.prov.ID, p.log
	cfg.OnStatus = p.tr.status
	c, err := client.New(cfg)
	if err != nil {
		conn.Close()
		return fmt.Errorf("demo: %s: %w", p.name, err)
	}
	if b, err := os.ReadFile(p.state); err == nil {
		if err := c.LoadState(b); err != nil {
			conn.Close()
			return fmt.Errorf("demo: %s: loading its state: %w", p.name, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		conn.Close()
		return fmt.Errorf("demo: %s: %w", p.name, err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.mu.Lock()
	p.c, p.conn, p.cancel = c, conn, cancel
	p.mu.Unlock()
	p.wg.Go(func() {
		if err := c.Run(rctx); err != nil && !errors.Is(err, context.Canceled) {
			p.log.Error("client stopped", "err", err)
		}
	})
	p.wg.Go(func() {
		for m := range c.Messages() {
			p.tr.received(p.name, m)
		}
	})
	select {
	case <-c.Ready():
		return nil
	case <-ctx.Done():
		p.stop()
		return fmt.Errorf("demo: %s waiting for a PKI document: %w", p.name, ctx.Err())
	}
}

// stop stops the client, saves its state (owner-only) and closes its
// connection. It is a no-op on a stopped peer.
func (p *peer) stop() error {
	p.mu.Lock()
	c, conn, cancel := p.c, p.conn, p.cancel
	p.c, p.conn, p.cancel = nil, nil, nil
	p.mu.Unlock()
	if c == nil {
		return nil
	}
	cancel()
	p.wg.Wait()
	st := c.Stats()
	p.mu.Lock()
	p.past = addStats(p.past, st)
	p.mu.Unlock()
	var errs []error
	if b, err := c.MarshalState(); err != nil {
		errs = append(errs, fmt.Errorf("demo: %s: saving state: %w", p.name, err))
	} else if err := os.WriteFile(p.state, b, 0o600); err != nil {
		errs = append(errs, fmt.Errorf("demo: %s: %w", p.name, err))
	}
	if err := conn.Close(); err != nil {
		errs = append(errs, fmt.Errorf("demo: %s: closing its connection: %w", p.name, err))
	}
	return errors.Join(errs...)
}

// client returns the running client, or nil.
func (p *peer) client() *client.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c
}

// stats sums the counters of every run of this peer.
func (p *peer) stats() client.Stats {
	p.mu.Lock()
	c, past := p.c, p.past
	p.mu.Unlock()
	if c == nil {
		return past
	}
	return addStats(past, c.Stats())
}

// addStats sums the counters the demo reports; a's suspects are replaced
// by b's (the later run's).
func addStats(a, b client.Stats) client.Stats {
	a.MessagesQueued += b.MessagesQueued
	a.MessagesSent += b.MessagesSent
	a.MessagesAcked += b.MessagesAcked
	a.MessagesFailed += b.MessagesFailed
	a.MessagesDelivered += b.MessagesDelivered
	a.Duplicates += b.Duplicates
	a.Retransmissions += b.Retransmissions
	a.PacketsPayload += b.PacketsPayload
	a.PacketsLoop += b.PacketsLoop
	a.PacketsDrop += b.PacketsDrop
	a.PayloadDecoys += b.PayloadDecoys
	a.SendErrors += b.SendErrors
	a.SkippedSlots += b.SkippedSlots
	a.LoopsSent += b.LoopsSent
	a.LoopsReturned += b.LoopsReturned
	a.LoopsLost += b.LoopsLost
	a.LoopsLate += b.LoopsLate
	a.LoopACKsLost += b.LoopACKsLost
	a.PaymentRefused += b.PaymentRefused
	a.Payments += b.Payments
	a.PaymentFailures += b.PaymentFailures
	a.Wallet = b.Wallet // one wallet per peer, kept across restarts
	a.PushFrames += b.PushFrames
	a.PushSlots += b.PushSlots
	a.PushMessages += b.PushMessages
	a.Pulses += b.Pulses
	m := map[[32]byte]int{}
	for k, v := range a.LostLoopMixes {
		m[k] += v
	}
	for k, v := range b.LostLoopMixes {
		m[k] += v
	}
	a.LostLoopMixes = m
	a.Suspects = slices.Clone(b.Suspects)
	return a
}
