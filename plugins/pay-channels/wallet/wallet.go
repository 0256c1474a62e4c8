// Package wallet is the client half of pay-channels: a wallet.Wallet
// (interfaces/wallet) that opens a payment channel to the client's
// provider through the client protocol's Issue operation and pays with
// one voucher per Redeem. It runs inside the client, also in the browser:
// it imports no host code and builds for js/wasm.
//
// The wallet keeps, per provider, its channel (its ID, deposit and
// expiry, checked against the ledger's signed receipt) and the newest
// voucher the provider took, in the client's saved state. A voucher sent
// whose answer was lost is sent again, byte for byte, before any newer
// one, so a lost reply never costs the client twice. When a channel's
// deposit runs low or its expiry nears, the wallet closes it (with its
// newest voucher, so the ledger settles on it) and opens the next.
package wallet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/sottonet/sotto/core/clientproto"
	iw "github.com/sottonet/sotto/interfaces/wallet"
	"github.com/sottonet/sotto/plugins/pay-channels/voucher"
)

// Options configure a Wallet.
type Options struct {
	// Deposit is what each channel is opened with, in micro-units (capped
	// by the provider's MaxDeposit); 0: 64 vouchers' worth.
	Deposit uint64
	// Rand supplies the payer key and channel sequence numbers; nil:
	// crypto/rand.
	Rand io.Reader
}

// Wallet implements wallet.Wallet for pay-channels.
type Wallet struct {
	deposit uint64
	rand    io.Reader

	pay sync.Mutex // one Pay, Close or Settle at a time

	mu       sync.Mutex
	key      ed25519.PrivateKey
	chans    map[string]*Channel // by payee, hex
	obtained uint64
	spent    uint64
	refused  uint64
}

// Channel is the wallet's view of one channel.
type Channel struct {
	ID      [voucher.IDLen]byte  `json:"id"`
	Payee   [voucher.KeyLen]byte `json:"payee"`
	Deposit uint64               `json:"deposit"`
	Expiry  uint64               `json:"expiry"`
	// Nonce and Amount are the newest voucher the provider took.
	Nonce  uint64 `json:"nonce"`
	Amount uint64 `json:"amount"`
	// Pending is a voucher sent whose answer was lost.
	Pending []byte `json:"pending,omitempty"`
	Closed  bool   `json:"closed,omitempty"`
}

var _ iw.Wallet = (*Wallet)(nil)

// New returns a wallet with a fresh payer key.
func New(o Options) *Wallet {
	w := &Wallet{deposit: o.Deposit, rand: o.Rand, chans: map[string]*Channel{}}
	if w.rand == nil {
		w.rand = rand.Reader
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(w.rand, seed); err != nil {
		panic(fmt.Sprintf("channels wallet: no randomness: %v", err))
	}
	w.key = ed25519.NewKeyFromSeed(seed)
	clear(seed)
	return w
}

// Payer is the wallet's key on the ledger.
func (w *Wallet) Payer() [voucher.KeyLen]byte {
	var k [voucher.KeyLen]byte
	w.mu.Lock()
	copy(k[:], w.key.Public().(ed25519.PublicKey))
	w.mu.Unlock()
	return k
}

// Channel returns a copy of the wallet's channel to payee, if any.
func (w *Wallet) Channel(payee [voucher.KeyLen]byte) (Channel, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.chans[hex.EncodeToString(payee[:])]
	if !ok {
		return Channel{}, false
	}
	return *c, true
}

func params(p iw.Provider) (*voucher.Params, error) {
	pp, err := voucher.ParseParams(p.Params)
	if err != nil {
		return nil, fmt.Errorf("%w: the provider publishes no payment-channel terms: %w", iw.ErrCannotPay, err)
	}
	return pp, nil
}

// spentBefore: the provider holds this voucher or a newer one.
func spentBefore(err error) bool {
	var e *clientproto.Error
	return errors.As(err, &e) && e.Code == clientproto.CodePaymentRequired && e.Message == "credential already spent"
}

// Pay sends one voucher paying for the provider's published batch of
// packets, opening a channel first when the wallet has none it can use.
func (w *Wallet) Pay(ctx context.Context, link iw.Link, p iw.Provider) (uint64, error) {
	w.pay.Lock()
	defer w.pay.Unlock()
	pp, err := params(p)
	if err != nil {
		return 0, err
	}
	cost := pp.Price * uint64(pp.Packets)
	for tries := 0; tries < 3; tries++ {
		ch, err := w.usable(ctx, link, p.Epoch, pp, cost)
		if err != nil {
			return 0, err
		}
		cred := ch.Pending
		if cred == nil {
			v := voucher.Voucher{Channel: ch.ID, Nonce: ch.Nonce + 1, Amount: ch.Amount + cost}
			w.mu.Lock()
			v.Sign(w.key)
			w.mu.Unlock()
			cred = v.Marshal()
			w.update(pp.Payee, func(c *Channel) { c.Pending = cred })
		}
		granted, _, err := link.Redeem(ctx, p.Epoch, uint64(pp.Packets), cred)
		v, _ := voucher.ParseVoucher(cred)
		switch {
		case err == nil:
			w.update(pp.Payee, func(c *Channel) { c.Nonce, c.Amount, c.Pending = v.Nonce, v.Amount, nil })
			w.mu.Lock()
			w.spent++
			w.mu.Unlock()
			return granted, nil
		case spentBefore(err) && ch.Pending != nil:
			// The provider took it before and its answer was lost: the
			// packets were granted then. Go on from it.
			w.update(pp.Payee, func(c *Channel) { c.Nonce, c.Amount, c.Pending = v.Nonce, v.Amount, nil })
		case errors.Is(err, clientproto.ErrPaymentRequired):
			// Closed, expired, or the provider holds vouchers the wallet
			// forgot (an old saved state): this channel is done. In the
			// last case it is still open: close it (the ledger settles on
			// the provider's newest voucher), so the next can be opened.
			if spentBefore(err) {
				if _, cerr := w.closeChannel(ctx, link, p.Epoch, pp, ch); cerr != nil && !errors.Is(cerr, clientproto.ErrPaymentRequired) {
					return 0, cerr
				}
			}
			w.update(pp.Payee, func(c *Channel) { c.Closed, c.Pending = true, nil })
			w.mu.Lock()
			w.refused++
			w.mu.Unlock()
		default:
			return 0, err // passing: the pending voucher is sent again next time
		}
	}
	return 0, fmt.Errorf("%w: the provider refused three vouchers in a row", iw.ErrCannotPay)
}

func (w *Wallet) update(payee [voucher.KeyLen]byte, f func(*Channel)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.chans[hex.EncodeToString(payee[:])]; ok {
		f(c)
	}
}

// usable returns a copy of a channel to pp.Payee that can pay cost in
// epoch, closing a spent one and opening a new one if needed.
func (w *Wallet) usable(ctx context.Context, link iw.Link, epoch uint64, pp *voucher.Params, cost uint64) (Channel, error) {
	if ch, ok := w.Channel(pp.Payee); ok && !ch.Closed {
		if ch.Pending != nil || epoch+1 < ch.Expiry && ch.Deposit-ch.Amount >= cost {
			return ch, nil
		}
		// Spent or expiring: close it on its newest voucher, so the
		// ledger pays the rest back after the dispute window.
		if epoch < ch.Expiry {
			if _, err := w.closeChannel(ctx, link, epoch, pp, ch); err != nil && !errors.Is(err, clientproto.ErrPaymentRequired) {
				return Channel{}, err
			}
		}
		w.update(pp.Payee, func(c *Channel) { c.Closed = true })
	}
	deposit := w.deposit
	if deposit == 0 {
		deposit = 64 * cost
	}
	deposit = min(deposit, pp.MaxDeposit)
	if deposit < cost {
		return Channel{}, fmt.Errorf("%w: a deposit of %d pays for no voucher of %d", iw.ErrCannotPay, deposit, cost)
	}
	var sb [8]byte
	if _, err := io.ReadFull(w.rand, sb[:]); err != nil {
		return Channel{}, err
	}
	o := voucher.Open{Payer: w.Payer(), Payee: pp.Payee, Seq: binary.BigEndian.Uint64(sb[:]), Deposit: deposit, Expiry: epoch + uint64(pp.MaxEpochs)}
	w.mu.Lock()
	o.Sign(w.key)
	w.mu.Unlock()
	reply, err := link.Issue(ctx, epoch, o.Marshal())
	if errors.Is(err, clientproto.ErrPaymentRequired) {
		return Channel{}, fmt.Errorf("%w: opening a channel: %w", iw.ErrCannotPay, err)
	}
	if err != nil {
		return Channel{}, fmt.Errorf("channels wallet: opening a channel: %w", err)
	}
	st, err := voucher.ParseReceipt(reply, pp.Ledger)
	if err != nil {
		return Channel{}, fmt.Errorf("channels wallet: the open's receipt: %w", err)
	}
	if st.ID != o.ID() || st.Payer != o.Payer || st.Payee != o.Payee || st.Deposit != deposit || st.Expiry != o.Expiry || st.Nonce != 0 {
		return Channel{}, errors.New("channels wallet: the ledger's receipt is not the channel asked for")
	}
	ch := &Channel{ID: st.ID, Payee: st.Payee, Deposit: st.Deposit, Expiry: st.Expiry}
	w.mu.Lock()
	w.chans[hex.EncodeToString(pp.Payee[:])] = ch
	w.obtained += deposit / cost
	w.mu.Unlock()
	return *ch, nil
}

func (w *Wallet) closeChannel(ctx context.Context, link iw.Link, epoch uint64, pp *voucher.Params, ch Channel) (*voucher.State, error) {
	c := voucher.Close{Channel: ch.ID}
	if ch.Nonce > 0 {
		v := voucher.Voucher{Channel: ch.ID, Nonce: ch.Nonce, Amount: ch.Amount}
		w.mu.Lock()
		v.Sign(w.key) // Ed25519 is deterministic: the voucher the provider holds
		w.mu.Unlock()
		c.Voucher = &v
	}
	w.mu.Lock()
	c.Sign(w.key)
	w.mu.Unlock()
	reply, err := link.Issue(ctx, epoch, c.Marshal())
	if err != nil {
		return nil, fmt.Errorf("channels wallet: closing: %w", err)
	}
	st, err := voucher.ParseReceipt(reply, pp.Ledger)
	if err != nil {
		return nil, fmt.Errorf("channels wallet: the close's receipt: %w", err)
	}
	return st, nil
}

// Close closes the wallet's channel to the provider on the ledger with
// the newest voucher the provider took, and returns the ledger's state of
// it; Settle recovers the unspent deposit once the dispute window is over.
func (w *Wallet) Close(ctx context.Context, link iw.Link, p iw.Provider) (*voucher.State, error) {
	w.pay.Lock()
	defer w.pay.Unlock()
	pp, err := params(p)
	if err != nil {
		return nil, err
	}
	ch, ok := w.Channel(pp.Payee)
	if !ok || ch.Closed {
		return nil, errors.New("channels wallet: no open channel to this provider")
	}
	if ch.Pending != nil {
		return nil, errors.New("channels wallet: a voucher's answer is pending; pay once more first")
	}
	st, err := w.closeChannel(ctx, link, p.Epoch, pp, ch)
	if err != nil {
		return nil, err
	}
	w.update(pp.Payee, func(c *Channel) { c.Closed = true })
	return st, nil
}

// Settle asks the ledger to pay out the wallet's last channel to the
// provider (closed, its dispute window over) and returns its final state:
// State.Refund is what came back to the wallet's key.
func (w *Wallet) Settle(ctx context.Context, link iw.Link, p iw.Provider) (*voucher.State, error) {
	w.pay.Lock()
	defer w.pay.Unlock()
	pp, err := params(p)
	if err != nil {
		return nil, err
	}
	ch, ok := w.Channel(pp.Payee)
	if !ok {
		return nil, errors.New("channels wallet: no channel to this provider")
	}
	s := voucher.Settle{Channel: ch.ID}
	reply, err := link.Issue(ctx, p.Epoch, s.Marshal())
	if err != nil {
		return nil, fmt.Errorf("channels wallet: settling: %w", err)
	}
	return voucher.ParseReceipt(reply, pp.Ledger)
}

// Balance reports the vouchers the open channels can still pay.
func (w *Wallet) Balance() iw.Balance {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := iw.Balance{Scheme: voucher.Scheme, Obtained: w.obtained, Spent: w.spent, Refused: w.refused}
	for _, c := range w.chans {
		if !c.Closed && c.Nonce > 0 {
			per := c.Amount / c.Nonce // what one voucher paid so far
			b.Credentials += int((c.Deposit - c.Amount) / per)
		}
	}
	return b
}

type state struct {
	Seed     []byte              `json:"seed"`
	Channels map[string]*Channel `json:"channels,omitempty"`
}

// MarshalState exports the payer key and the channels.
func (w *Wallet) MarshalState() ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return json.Marshal(state{Seed: w.key.Seed(), Channels: w.chans})
}

// LoadState replaces the payer key and merges the channels (a channel
// held already keeps the newer of the two views).
func (w *Wallet) LoadState(b []byte) error {
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("channels wallet: state: %w", err)
	}
	if len(st.Seed) != ed25519.SeedSize {
		return fmt.Errorf("channels wallet: state: a seed of %d bytes", len(st.Seed))
	}
	for k, c := range st.Channels {
		if c == nil || c.Amount > c.Deposit {
			return fmt.Errorf("channels wallet: state: channel %s", k)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.key = ed25519.NewKeyFromSeed(st.Seed)
	clear(st.Seed)
	for k, c := range st.Channels {
		if old, ok := w.chans[k]; !ok || old.ID != c.ID || c.Nonce > old.Nonce {
			w.chans[k] = c
		}
	}
	return nil
}
