package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces/wallet"
)

// Paying the provider (Config.Wallet).
//
// A provider that charges takes one packet of the client's allowance per
// Send and refuses a Send with none left (payment required). The client
// keeps an estimate of its allowance: what Pay granted less what it sent
// since. When the estimate falls to PayAhead packets, it has the wallet
// pay in the background, so cover traffic does not stall; a packet the
// provider refuses for payment is counted (Stats.PaymentRefused), stays
// queued (a payload fragment is sent again, not counted as a try) and
// makes the client pay at once. When the wallet cannot pay (or there is
// no wallet) and the provider refuses packets for payment, Send refuses
// new messages with an error wrapping ErrPaymentRequired until a packet
// is accepted again: nothing is dropped silently.

// ErrPaymentRequired: the provider refuses packets for payment and the
// client cannot pay (no wallet, or the wallet has nothing left and cannot
// obtain more now). It is the client protocol's sentinel.
var ErrPaymentRequired = clientproto.ErrPaymentRequired

// DefaultPayAhead is the allowance left at which the client pays again.
const DefaultPayAhead = 20

// payRetry is how long after a failed payment the client tries again.
const payRetry = 5 * time.Second

// payState is the client's side of the provider's allowance (under c.mu).
type payState struct {
	allowance uint64 // granted and not yet used, as far as the client knows
	paying    bool
	refused   bool  // the provider refused a packet for payment since the last one it took
	charges   bool  // the provider refused a packet for payment once
	cannot    error // why the last payment failed, if the wallet could not pay
	lastTry   time.Time
}

// sentPaid accounts for a packet the provider took (under c.mu) and starts
// a payment when the allowance runs low.
func (c *Client) sentPaid(ctx context.Context, now time.Time) {
	p := &c.payment
	p.refused = false
	p.cannot = nil
	if p.allowance > 0 {
		p.allowance--
	}
	if c.cfg.Wallet != nil && p.allowance <= uint64(c.cfg.PayAhead) && c.providerCharges() {
		c.startPay(ctx, now)
	}
}

// refusedForPayment accounts for a packet the provider refused for payment
// (under c.mu).
func (c *Client) refusedForPayment(ctx context.Context, now time.Time) {
	p := &c.payment
	c.stats.PaymentRefused++
	p.refused = true
	p.charges = true
	p.allowance = 0
	if c.cfg.Wallet == nil {
		p.cannot = errors.New("client: no wallet to pay the provider with")
		return
	}
	c.startPay(ctx, now)
}

// providerCharges reports whether the provider's descriptor publishes
// accounting parameters, or it refused a packet for payment (under c.mu).
func (c *Client) providerCharges() bool {
	if c.payment.charges {
		return true
	}
	return len(c.accountingParams()) > 0
}

// accountingParams are what the provider publishes in the document of the
// current epoch, else the latest one (under c.mu): an issuer key belongs
// to its epoch.
func (c *Client) accountingParams() []byte {
	v := c.docs[c.clk0().At(time.Now())]
	if v == nil {
		v = c.latestView()
	}
	if v == nil {
		return nil
	}
	n, ok := v.provider(c.cfg.ProviderID)
	if !ok || n.Desc == nil {
		return nil
	}
	return n.Desc.Accounting
}

// startPay has the wallet pay in the background, unless it is paying or
// failed within payRetry (under c.mu).
func (c *Client) startPay(ctx context.Context, now time.Time) {
	p := &c.payment
	if p.paying || (!p.lastTry.IsZero() && p.cannot != nil && now.Sub(p.lastTry) < payRetry) {
		return
	}
	p.paying = true
	params := c.accountingParams()
	c.payWG.Go(func() { c.pay(ctx, params) })
}

func (c *Client) pay(ctx context.Context, params []byte) {
	var (
		granted uint64
		err     error
	)
	link, ok := c.link().(wallet.Link)
	if !ok {
		err = fmt.Errorf("%w: the link to the provider has no Issue and Redeem", wallet.ErrCannotPay)
	} else {
		pctx, cancel := context.WithTimeout(ctx, 4*callTimeout)
		granted, err = c.cfg.Wallet.Pay(pctx, link, wallet.Provider{Epoch: c.clk0().At(time.Now()), Params: params})
		cancel()
	}
	c.mu.Lock()
	p := &c.payment
	p.paying = false
	p.lastTry = time.Now()
	if err == nil {
		p.allowance += granted
		p.cannot = nil
		c.stats.Payments++
	} else {
		c.stats.PaymentFailures++
		if errors.Is(err, wallet.ErrCannotPay) {
			p.cannot = err
		}
	}
	c.changed() // the wallet's state changed
	c.mu.Unlock()
	switch {
	case err == nil:
		c.log.Debug("paid the provider", "granted", granted)
	case ctx.Err() != nil:
	case errors.Is(err, wallet.ErrCannotPay):
		c.log.Warn("cannot pay the provider", "err", err)
	default:
		c.log.Info("paying the provider failed; will retry", "err", err)
	}
	if err := c.persist(); err != nil {
		c.log.Warn("saving the state after a payment", "err", err)
	}
}

// payBlocked is the error Send refuses a message with while the provider
// refuses packets for payment and the client cannot pay.
func (c *Client) payBlocked() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := &c.payment
	if p.refused && p.cannot != nil && p.allowance == 0 {
		return fmt.Errorf("client: the provider refuses packets for payment: %w: %w", ErrPaymentRequired, p.cannot)
	}
	return nil
}
