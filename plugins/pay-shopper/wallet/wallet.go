// Package wallet is the secret shopper's client half: users pay nothing,
// so the wallet presents an empty credential, which the shopper's ledger
// grants (a provider with an accounting slot still asks every client to
// Redeem before it forwards; this is how a free client answers).
package wallet

import (
	"context"
	"sync"

	"github.com/sottonet/sotto/interfaces/wallet"
)

// Ask is how many packets one Pay asks for.
const Ask = 1000

// Wallet is the shopper's wallet. The zero value is ready.
type Wallet struct {
	mu    sync.Mutex
	spent uint64
}

// New returns a wallet.
func New() *Wallet { return &Wallet{} }

// Pay redeems an empty credential.
func (w *Wallet) Pay(ctx context.Context, link wallet.Link, p wallet.Provider) (uint64, error) {
	g, _, err := link.Redeem(ctx, p.Epoch, Ask, nil)
	if err != nil {
		return 0, err
	}
	w.mu.Lock()
	w.spent++
	w.mu.Unlock()
	return g, nil
}

// Balance reports the credentials presented.
func (w *Wallet) Balance() wallet.Balance {
	w.mu.Lock()
	defer w.mu.Unlock()
	return wallet.Balance{Scheme: "shopper", Credentials: 1, Obtained: w.spent, Spent: w.spent}
}

// MarshalState: nothing to keep.
func (w *Wallet) MarshalState() ([]byte, error) { return nil, nil }

// LoadState: nothing kept.
func (w *Wallet) LoadState([]byte) error { return nil }
