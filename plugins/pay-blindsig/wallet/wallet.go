// Package wallet is the client half of pay-blindsig: a wallet.Wallet
// (interfaces/wallet) that obtains blind-signed tokens from the client's
// provider through the client protocol's Issue operation and spends one
// with Redeem whenever the client asks it to pay. It runs inside the
// client, also in the browser: it imports no host code and builds for
// js/wasm.
//
// Tokens are bought in batches (blinded locally, signed by the provider
// without seeing them, unblinded and checked here), kept in the client's
// saved state until spent, and dropped once their key's validity is over
// or the provider refuses them.
package wallet

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/sottonet/sotto/core/clientproto"
	iw "github.com/sottonet/sotto/interfaces/wallet"
	"github.com/sottonet/sotto/plugins/pay-blindsig/token"
)

// Options configure a Wallet.
type Options struct {
	// Batch is how many tokens one Issue asks for (capped by the
	// provider's MaxBatch and, under the free policy, its quota); 0: 8.
	Batch int
	// Vouchers are purchase vouchers (token.SignVoucher's encoding), used
	// in order under the voucher policy.
	Vouchers [][]byte
	// Rand supplies the nonces and blinding factors; nil: crypto/rand.
	Rand io.Reader
}

// Wallet implements wallet.Wallet for pay-blindsig.
type Wallet struct {
	batch int
	rand  io.Reader

	pay sync.Mutex // one Pay at a time

	mu       sync.Mutex
	tokens   []held
	vouchers [][]byte
	obtained uint64
	spent    uint64
	refused  uint64
}

// held is a token and the epochs its key is valid in.
type held struct {
	Token      []byte `json:"token"`
	ValidFrom  uint64 `json:"from"`
	ValidUntil uint64 `json:"until"`
}

var _ iw.Wallet = (*Wallet)(nil)

// New returns an empty wallet.
func New(o Options) *Wallet {
	w := &Wallet{batch: o.Batch, rand: o.Rand}
	if w.batch <= 0 {
		w.batch = 8
	}
	if w.rand == nil {
		w.rand = rand.Reader
	}
	for _, v := range o.Vouchers {
		w.vouchers = append(w.vouchers, slices.Clone(v))
	}
	return w
}

// Pay spends one token valid at p.Epoch, obtaining a batch first when the
// wallet holds none. A token the provider refuses (spent, expired) is
// dropped and the next one tried.
func (w *Wallet) Pay(ctx context.Context, link iw.Link, p iw.Provider) (uint64, error) {
	w.pay.Lock()
	defer w.pay.Unlock()
	params, err := token.ParseParams(p.Params)
	if err != nil {
		return 0, fmt.Errorf("%w: the provider publishes no blind-signature parameters: %w", iw.ErrCannotPay, err)
	}
	for tries := 0; tries < 4; tries++ {
		tok, ok := w.take(p.Epoch)
		if !ok {
			if err := w.obtain(ctx, link, p.Epoch, params); err != nil {
				return 0, err
			}
			if tok, ok = w.take(p.Epoch); !ok {
				return 0, fmt.Errorf("%w: no token valid in epoch %d after issuance", iw.ErrCannotPay, p.Epoch)
			}
		}
		granted, _, err := link.Redeem(ctx, p.Epoch, uint64(params.PacketsPerToken), tok.Token)
		switch {
		case err == nil:
			w.mu.Lock()
			w.spent++
			w.mu.Unlock()
			return granted, nil
		case errors.Is(err, clientproto.ErrPaymentRequired) || errors.Is(err, clientproto.ErrBadRequest) && ctx.Err() == nil && !isEpochRefusal(err):
			// Spent before (a Redeem whose reply was lost), expired, or not
			// this provider's: drop it, try the next.
			w.mu.Lock()
			w.refused++
			w.mu.Unlock()
		default:
			w.put(tok) // passing: keep it
			return 0, err
		}
	}
	return 0, fmt.Errorf("%w: the provider refused four tokens in a row", iw.ErrCannotPay)
}

// isEpochRefusal: the provider refused the epoch, not the token.
func isEpochRefusal(err error) bool {
	var e *clientproto.Error
	return errors.As(err, &e) && e.Code == clientproto.CodeBadRequest && len(e.Message) > 5 && e.Message[:5] == "epoch"
}

// take removes and returns the oldest token valid at epoch, dropping
// those whose validity is over.
func (w *Wallet) take(epoch uint64) (held, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tokens = slices.DeleteFunc(w.tokens, func(h held) bool { return h.ValidUntil <= epoch })
	for i, h := range w.tokens {
		if h.ValidFrom <= epoch {
			w.tokens = slices.Delete(w.tokens, i, i+1)
			return h, true
		}
	}
	return held{}, false
}

func (w *Wallet) put(h held) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tokens = append([]held{h}, w.tokens...)
}

// obtain buys a batch of tokens under the key params publishes, halving
// the batch when the provider refuses it (a quota nearly used up, a
// voucher with few tokens left).
func (w *Wallet) obtain(ctx context.Context, link iw.Link, epoch uint64, params *token.Params) error {
	n := min(w.batch, int(params.MaxBatch), token.MaxBatch)
	if params.Policy == token.PolicyFree {
		n = min(n, int(params.FreeQuota))
	}
	for n >= 1 {
		var voucher []byte
		if params.Policy == token.PolicyVoucher {
			w.mu.Lock()
			if len(w.vouchers) == 0 {
				w.mu.Unlock()
				return fmt.Errorf("%w: the provider sells tokens for vouchers and the wallet holds none", iw.ErrCannotPay)
			}
			voucher = w.vouchers[0]
			w.mu.Unlock()
		}
		pend := make([]*token.Pending, n)
		req := &token.IssueRequest{KeyPeriod: params.KeyPeriod, Voucher: voucher}
		for i := range pend {
			var err error
			if pend[i], err = token.Blind(w.rand, params); err != nil {
				return fmt.Errorf("blindsig wallet: blinding: %w", err)
			}
			req.Blinded = append(req.Blinded, pend[i].Blinded)
		}
		reply, err := link.Issue(ctx, epoch, req.Marshal())
		if errors.Is(err, clientproto.ErrPaymentRequired) {
			if n > 1 {
				n /= 2
				continue
			}
			if voucher != nil {
				// This voucher is used up: the next one.
				w.mu.Lock()
				if len(w.vouchers) > 0 && slices.Equal(w.vouchers[0], voucher) {
					w.vouchers = w.vouchers[1:]
				}
				more := len(w.vouchers) > 0
				w.mu.Unlock()
				if more {
					n = min(w.batch, int(params.MaxBatch))
					continue
				}
			}
			return fmt.Errorf("%w: %w", iw.ErrCannotPay, err)
		}
		if err != nil {
			return fmt.Errorf("blindsig wallet: issuing: %w", err)
		}
		sigs, err := token.ParseIssueResponse(reply, n)
		if err != nil {
			return fmt.Errorf("blindsig wallet: %w", err)
		}
		got := make([]held, 0, n)
		for i, p := range pend {
			t, err := p.Finalize(sigs[i])
			if err != nil {
				// The provider signed with another key than it publishes
				// (or tried to tag this client): keep nothing of it.
				return fmt.Errorf("blindsig wallet: token %d of the batch: %w", i, err)
			}
			got = append(got, held{Token: t.Marshal(), ValidFrom: params.ValidFrom, ValidUntil: params.ValidUntil})
		}
		w.mu.Lock()
		w.tokens = append(w.tokens, got...)
		w.obtained += uint64(len(got))
		w.mu.Unlock()
		return nil
	}
	return fmt.Errorf("%w: the provider issues no tokens", iw.ErrCannotPay)
}

// Balance reports the tokens held and counted.
func (w *Wallet) Balance() iw.Balance {
	w.mu.Lock()
	defer w.mu.Unlock()
	return iw.Balance{Scheme: token.Scheme, Credentials: len(w.tokens), Obtained: w.obtained, Spent: w.spent, Refused: w.refused}
}

type state struct {
	Tokens   []held   `json:"tokens,omitempty"`
	Vouchers [][]byte `json:"vouchers,omitempty"`
}

// MarshalState exports the tokens held and the vouchers not used up.
func (w *Wallet) MarshalState() ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return json.Marshal(state{Tokens: w.tokens, Vouchers: w.vouchers})
}

// LoadState merges exported tokens and vouchers (a token or voucher held
// already is not added twice).
func (w *Wallet) LoadState(b []byte) error {
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("blindsig wallet: state: %w", err)
	}
	for _, h := range st.Tokens {
		if _, err := token.ParseToken(h.Token); err != nil {
			return fmt.Errorf("blindsig wallet: state: %w", err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, h := range st.Tokens {
		if !slices.ContainsFunc(w.tokens, func(x held) bool { return slices.Equal(x.Token, h.Token) }) {
			w.tokens = append(w.tokens, h)
		}
	}
	for _, v := range st.Vouchers {
		if !slices.ContainsFunc(w.vouchers, func(x []byte) bool { return slices.Equal(x, v) }) {
			w.vouchers = append(w.vouchers, v)
		}
	}
	return nil
}
