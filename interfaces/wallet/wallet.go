// Package wallet is the client half of the accounting contract: what a
// client pays its provider with. Where interfaces.Accounting (the node
// half) runs out of process at providers, a Wallet runs in process inside
// the client (also in the browser: this package imports neither the host,
// nor go-plugin, nor any plugin), so it has no gRPC twin.
//
// Each accounting design ships its wallet beside its node half
// (plugins/<design>/wallet); cmd/sotto (and web/) hand the chosen one to
// the client (client.Config.Wallet), which never imports a plugin. The
// client calls Pay before its allowance at the provider runs out, so
// cover traffic never stalls for payment; it keeps what MarshalState
// returns in its own saved state, so what was bought survives a restart.
package wallet

import (
	"context"
	"errors"
)

// Link is the wallet's way to its provider: the client protocol's Issue
// and Redeem operations (docs/SPEC.md, "Client protocol"). client/p2p's
// Conn implements it.
type Link interface {
	// Issue runs one issuance step of the provider's design for epoch
	// (request and reply are the design's bytes). A refusal wraps
	// clientproto.ErrPaymentRequired.
	Issue(ctx context.Context, epoch uint64, request []byte) ([]byte, error)
	// Redeem presents a credential for epoch and returns the packets the
	// provider added to the client's allowance.
	Redeem(ctx context.Context, epoch, packets uint64, credential []byte) (granted uint64, receipt []byte, err error)
}

// Provider is what the client knows of its provider when it pays.
type Provider struct {
	// Epoch is the client's current epoch (the provider's, within one).
	Epoch uint64
	// Scheme-specific public parameters the provider publishes in its
	// descriptor for Epoch (Descriptor.Accounting); empty when it
	// publishes none.
	Params []byte
}

// Wallet is one client's purse for one accounting design. Implementations
// are safe for concurrent use.
type Wallet interface {
	// Pay presents one credential to the provider through link, obtaining
	// credentials first if the wallet holds none it can spend, and returns
	// the packets granted. An error wrapping ErrCannotPay means the wallet
	// cannot pay now (nothing left to spend and nothing more to obtain: a
	// quota used up, no voucher); any other error is passing (the link is
	// down, the provider busy). A failed Pay loses no credential the
	// provider did not take.
	Pay(ctx context.Context, link Link, p Provider) (granted uint64, err error)
	// Balance reports what the wallet holds and has done.
	Balance() Balance
	// MarshalState exports what the wallet must not forget (credentials
	// bought and not spent), for the client's saved state.
	MarshalState() ([]byte, error)
	// LoadState merges a state exported by MarshalState.
	LoadState(b []byte) error
}

// Balance is a wallet's holdings and counters since it was made.
type Balance struct {
	Scheme string
	// Credentials spendable now (tokens held, a channel's remaining
	// deposit in credentials...).
	Credentials int
	// Obtained and Spent count credentials since the wallet was made.
	Obtained, Spent uint64
	// Refused counts credentials the provider refused (spent before,
	// expired, forged), which the wallet then dropped.
	Refused uint64
}

// ErrCannotPay: the wallet has nothing to pay with and cannot obtain more
// now.
var ErrCannotPay = errors.New("wallet: cannot pay")
