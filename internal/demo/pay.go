package demo

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/interfaces/wallet"
	"github.com/sottonet/sotto/internal/localnet"
	"github.com/sottonet/sotto/internal/rewards"
	bswallet "github.com/sottonet/sotto/plugins/pay-blindsig/wallet"
	chwallet "github.com/sottonet/sotto/plugins/pay-channels/wallet"
	shwallet "github.com/sottonet/sotto/plugins/pay-shopper/wallet"
)

// Paying providers (Config.Accounting blindsig): every provider runs
// plugins/pay-blindsig under its free-quota policy; alice and bob pay with
// its wallet; carol, a third client of alice's provider, has no wallet and
// must be refused.

// With Config.Accounting channels every provider runs plugins/pay-channels
// (Sotto's own ledger in its storage KV) and alice and bob each open a
// channel to their provider and pay with vouchers; carol is refused the
// same way.

// paying: the design charges (a client needs a wallet).
func paying(design string) bool {
	return design == AccountingBlindsig || design == AccountingChannels
}

// providerAccounting is the providers' accounting slot for a design.
func providerAccounting(design string) map[string]any {
	switch design {
	case AccountingBlindsig:
		return map[string]any{"builtin": "pay-blindsig", "config": map[string]any{
			"policy": "free", "free_tokens_per_epoch": 64, "packets_per_token": 100,
		}}
	case AccountingChannels:
		return map[string]any{"builtin": "pay-channels", "config": map[string]any{
			"price_per_packet": 10, "packets_per_voucher": 100, "max_deposit": 1_000_000,
		}}
	case AccountingShopper:
		// The ledger of the secret shopper: users pay nothing; it pays
		// nodes by what auditors measured (plugins/pay-shopper).
		return map[string]any{"builtin": "pay-shopper", "config": map[string]any{"budget": 1000000, "threshold": 0.9}}
	}
	return nil
}

// auditRate is the providers' probe rate: with the shopper every provider
// audits, at five times a client's λL, so that an epoch of the demo's
// short ones carries enough probes through each mix to score it.
func auditRate(cfg Config) float64 {
	if cfg.Accounting != AccountingShopper {
		return 0
	}
	return 5 * max(cfg.LambdaL, 1)
}

// cheatingMix is the mix Config.CheatDrop makes cheat.
func cheatingMix(cfg Config) string {
	if cfg.CheatDrop <= 0 {
		return ""
	}
	if cfg.Layers >= 2 {
		return "mix-2-1"
	}
	return "mix-1-1"
}

// rewardsReport gathers the rewards table from every node's metrics
// (internal/rewards), nodes named as the demo names them.
func (r *run) rewardsReport(ctx context.Context, s *Summary) {
	names := map[string]string{}
	for _, n := range r.ln.Nodes {
		names[hex.EncodeToString(n.ID[:])] = n.Name
	}
	rep := rewards.New(names)
	for _, n := range r.ln.Nodes {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := rep.Scrape(sctx, n.Metrics); err != nil {
			r.log.Warn("rewards: scraping a node", "node", n.Name, "err", err)
		}
		cancel()
	}
	s.Rewards = rep.Tables()
	s.CheatingMix, s.CheatDrop = cheatingMix(r.cfg), r.cfg.CheatDrop
}

// writeRewards prints the rewards tables.
func (s *Summary) writeRewards(w io.Writer) {
	if len(s.Rewards) == 0 {
		return
	}
	if s.CheatingMix != "" {
		fmt.Fprintf(w, "  rewards      (%s cheats: drops %.0f%% of what it should forward, counts it all as work)\n", s.CheatingMix, 100*s.CheatDrop)
	} else {
		fmt.Fprintf(w, "  rewards\n")
	}
	var b strings.Builder
	rewards.Write(&b, s.Rewards)
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		fmt.Fprintf(w, "    %s\n", l)
	}
}

// wallet is p's wallet (made once, kept across restarts), or nil when
// providers charge nothing; it is metered (meteredWallet) for the
// summary's cost line.
func (r *run) wallet(p *peer) wallet.Wallet {
	if p.wallet == nil {
		var w wallet.Wallet
		switch r.cfg.Accounting {
		case AccountingShopper:
			w = shwallet.New() // pays nothing: an empty credential
		case AccountingChannels:
			w = chwallet.New(chwallet.Options{})
		case AccountingBlindsig:
			w = bswallet.New(bswallet.Options{Batch: 4})
		default:
			return nil
		}
		p.wallet = &meteredWallet{Wallet: w}
	}
	return p.wallet
}

// mixAccounting is the mixes' accounting slot under every design: the
// work ledger alone (examples/accounting-free, built in as
// "accounting-free"), so a mix's forwarded work reaches a ledger it can
// be paid from (internal/rewards splits what gateways collected by every
// node's work). A mix charges nobody: no client talks to it.
func mixAccounting() map[string]any {
	return map[string]any{"builtin": "accounting-free"}
}

// payResult is what the demo saw of payment.
type payResult struct {
	carol *peer
	// CarolRefused: carol's Send was refused as payment required, and
	// the provider refused her packets; CarolErr is the error Send gave.
	carolRefused bool
	carolErr     error
}

// freeloaderWait bounds the wait for carol's provider to refuse her.
const freeloaderWait = 30 * time.Second

// freeloader runs carol, a client of prov without a wallet, until her
// provider has refused her packets for payment and her Send is refused.
func (r *run) freeloader(ctx context.Context, prov *localnet.Node, newCfg func(*peer) client.Config) error {
	carol, err := newPeer("carol", prov, filepath.Join(r.cfg.Dir, "carol.state"), r.log, newTracker(), func(p *peer) client.Config {
		cfg := newCfg(p)
		cfg.Wallet = nil
		return cfg
	})
	if err != nil {
		return err
	}
	r.pay.carol = carol
	if err := carol.start(ctx); err != nil {
		return err
	}
	to := &client.Contact{Network: r.ln.Spec.Network, Key: carol.client().MessageKey(), Provider: prov.ID, Mailbox: [32]byte{1}}
	deadline := time.Now().Add(freeloaderWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if carol.stats().PaymentRefused > 0 {
			_, err := carol.client().Send(ctx, to, []byte("carol has not paid"))
			if errors.Is(err, client.ErrPaymentRequired) {
				r.pay.carolRefused, r.pay.carolErr = true, err
				break
			}
			r.pay.carolErr = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.pr.phase("carol (no wallet) on %s: %d packets refused for payment; Send refused: %v", prov.Name, carol.stats().PaymentRefused, r.pay.carolRefused)
	return carol.stop()
}

// paySummary fills s's payment fields.
func (r *run) paySummary(s *Summary) {
	s.Accounting = r.cfg.Accounting
	if r.ln != nil {
		r.rewardsReport(context.Background(), s)
	}
	for _, p := range []*peer{r.alice, r.bob} {
		st := p.stats()
		s.CredentialsObtained += st.Wallet.Obtained
		s.CredentialsSpent += st.Wallet.Spent
		s.PaymentRefused += st.PaymentRefused
	}
	if c := r.pay.carol; c != nil {
		s.FreeloaderRefusedPackets = c.stats().PaymentRefused
		s.FreeloaderRefused = r.pay.carolRefused
		s.FreeloaderChecked = true
	}
}

// writePayment prints the payment line of the summary.
func (s *Summary) writePayment(w io.Writer) {
	s.writeRewards(w)
	switch s.Accounting {
	case AccountingBlindsig:
		fmt.Fprintf(w, "  payment      blindsig: alice and bob obtained %d tokens, spent %d; %d of their packets refused for payment\n",
			s.CredentialsObtained, s.CredentialsSpent, s.PaymentRefused)
	case AccountingChannels:
		fmt.Fprintf(w, "  payment      channels: alice and bob opened channels worth %d vouchers, paid %d vouchers; %d of their packets refused for payment\n",
			s.CredentialsObtained, s.CredentialsSpent, s.PaymentRefused)
	default:
		fmt.Fprintf(w, "  payment      %s: providers charge nothing\n", orFree(s.Accounting))
		return
	}
	refused := "NOT refused"
	if s.FreeloaderRefused {
		refused = "refused as payment required"
	}
	fmt.Fprintf(w, "  freeloader   carol (no wallet): %d packets refused for payment at her provider; her Send %s\n",
		s.FreeloaderRefusedPackets, refused)
}

func orFree(s string) string {
	if s == "" {
		return AccountingFree
	}
	return s
}
