package channels

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/plugins/pay-channels/voucher"
)

// Ledger is where channels hold their deposits: a client opens a channel
// with a deposit and an expiry, its provider claims the newest voucher,
// the client closes it, and after the dispute window anyone settles it:
// the newest voucher's amount goes to the provider, the rest back to the
// client. In a deployment a blockchain or a payment network sits behind
// this interface (Filecoin's payment-channel actor, HOPR's channels);
// KVLedger is Sotto's own.
//
// Every method is all or nothing: a refused call changes nothing. A
// refusal wraps interfaces.ErrPaymentRequired; a voucher not newer than
// the one the ledger holds wraps ErrStale (and interfaces.ErrDoubleSpend).
type Ledger interface {
	// Key is the key the ledger signs its receipts with.
	Key() [voucher.KeyLen]byte
	// Dispute is the number of epochs between a close (or the expiry) and
	// the settlement.
	Dispute() uint64
	// Open records a channel signed by its payer, in epoch.
	Open(ctx context.Context, o *voucher.Open, epoch uint64) (*Record, error)
	// Channel returns a channel's state (an error wrapping
	// interfaces.ErrNotFound if the ledger has none).
	Channel(ctx context.Context, id [voucher.IDLen]byte) (*voucher.State, error)
	// Claim presents a voucher: it replaces the channel's newest one if its
	// nonce is higher and its amount not lower, until the channel settles.
	Claim(ctx context.Context, v *voucher.Voucher, epoch uint64) (*Record, error)
	// Close starts the dispute window of a channel, by its payer, with the
	// payer's newest voucher if any (taken as Claim takes it).
	Close(ctx context.Context, c *voucher.Close, epoch uint64) (*Record, error)
	// Settle pays a channel out once its dispute window is over.
	Settle(ctx context.Context, id [voucher.IDLen]byte, epoch uint64) (*Record, error)
	// Balance is what settlements paid to key in all.
	Balance(ctx context.Context, key [voucher.KeyLen]byte) (uint64, error)
}

// Record is a channel's state after a ledger entry, and the ledger's
// signed receipt of it (voucher.ParseReceipt).
type Record struct {
	State   voucher.State
	Receipt []byte
}

// ErrStale: a voucher not newer than the one the ledger or the provider
// holds (a lower or equal nonce, or a lower amount).
var ErrStale = fmt.Errorf("pay-channels: stale voucher: %w", interfaces.ErrDoubleSpend)

func refused(format string, a ...any) error {
	return fmt.Errorf("%w: pay-channels ledger: %s", interfaces.ErrPaymentRequired, fmt.Sprintf(format, a...))
}

// LedgerNamespace is the KV namespace of KVLedger: the provider's own
// (Namespace), under keys of their own starting with "L", so that a
// provider on the same KV reads a channel and its newest voucher in one
// call and swaps them together. Keys: "Lk" → the ledger's Ed25519 seed;
// "Lh" → head (sequence number, SHA-256 of the last entry); "Le" seq →
// entry; "Lc" channel → state; "Lp" payer payee → the pair's current
// channel; "La" key → balance paid out.
const LedgerNamespace = Namespace

// LedgerConfig are a KVLedger's terms.
type LedgerConfig struct {
	MaxDeposit    uint64 // the largest deposit a channel may hold
	MaxEpochs     uint64 // the longest a channel may stay open
	DisputeEpochs uint64
}

// KVLedger is Sotto's own ledger: an append-only log of entries, each
// hash-chained to the one before and signed by the ledger key, kept in a
// KV with compare-and-swap, and the channel states it implies. Each entry
// carries the request that caused it with the payer's own signature
// (open, close, voucher), so anyone reading the log can check every
// change against its author. It mints deposits (there is no currency
// behind it): it stands for a blockchain in tests and in the demo, and is
// only as honest as whoever keeps its KV.
type KVLedger struct {
	cfg LedgerConfig
	kv  interfaces.KV
	sw  interfaces.KVSwapper
	key ed25519.PrivateKey
	pub [voucher.KeyLen]byte
}

var _ Ledger = (*KVLedger)(nil)

// Entry kinds of the log.
const (
	entryOpen   = 1
	entryClaim  = 2
	entryClose  = 3
	entrySettle = 4
)

// OpenKVLedger opens (or starts) the ledger kept in kv.
func OpenKVLedger(ctx context.Context, cfg LedgerConfig, kv interfaces.KV) (*KVLedger, error) {
	sw, ok := kv.(interfaces.KVSwapper)
	if !ok {
		return nil, fmt.Errorf("%w: pay-channels ledger: the KV (%T) offers no compare-and-swap", interfaces.ErrUnavailable, kv)
	}
	seed, err := loadOrCreateSeed(ctx, kv, sw, LedgerNamespace, []byte("Lk"))
	if err != nil {
		return nil, fmt.Errorf("pay-channels ledger: %w", err)
	}
	l := &KVLedger{cfg: cfg, kv: kv, sw: sw, key: ed25519.NewKeyFromSeed(seed)}
	clear(seed)
	copy(l.pub[:], l.key.Public().(ed25519.PublicKey))
	return l, nil
}

// loadOrCreateSeed returns the Ed25519 seed stored at key in ns, storing a
// new one first if there is none (two processes racing keep the first).
func loadOrCreateSeed(ctx context.Context, kv interfaces.KV, sw interfaces.KVSwapper, ns string, key []byte) ([]byte, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	resp, err := sw.KVSwap(ctx, &interfaces.KVSwapRequest{Namespace: ns, Entries: []interfaces.KVSwapEntry{{Key: key, ExpectAbsent: true, Value: seed}}})
	if err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			return nil, fmt.Errorf("%w: the KV offers no compare-and-swap: %w", interfaces.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("storing a key: %w", err)
	}
	if len(resp.Applied) != 1 {
		return nil, interfaces.ErrMalformedReply
	}
	if resp.Applied[0] {
		return seed, nil
	}
	clear(seed)
	if len(resp.Current[0]) != ed25519.SeedSize {
		return nil, fmt.Errorf("a stored key of %d bytes", len(resp.Current[0]))
	}
	return resp.Current[0], nil
}

// Key returns the ledger's public key.
func (l *KVLedger) Key() [voucher.KeyLen]byte { return l.pub }

// Dispute returns the dispute window in epochs.
func (l *KVLedger) Dispute() uint64 { return l.cfg.DisputeEpochs }

func channelKey(id [voucher.IDLen]byte) []byte { return append([]byte("Lc"), id[:]...) }

func (l *KVLedger) get(ctx context.Context, keys ...[]byte) ([][]byte, []bool, error) {
	got, err := l.kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: LedgerNamespace, Keys: keys})
	if err != nil {
		return nil, nil, fmt.Errorf("pay-channels ledger: reading: %w", err)
	}
	if len(got.Found) != len(keys) || len(got.Values) != len(keys) {
		return nil, nil, fmt.Errorf("pay-channels ledger: %w", interfaces.ErrMalformedReply)
	}
	return got.Values, got.Found, nil
}

// Channel returns a channel's state.
func (l *KVLedger) Channel(ctx context.Context, id [voucher.IDLen]byte) (*voucher.State, error) {
	v, f, err := l.get(ctx, channelKey(id))
	if err != nil {
		return nil, err
	}
	if !f[0] {
		return nil, fmt.Errorf("%w: channel %x", interfaces.ErrNotFound, id[:8])
	}
	return voucher.ParseState(v[0])
}

// Balance returns what settlements paid to key.
func (l *KVLedger) Balance(ctx context.Context, key [voucher.KeyLen]byte) (uint64, error) {
	v, f, err := l.get(ctx, append([]byte("La"), key[:]...))
	if err != nil {
		return 0, err
	}
	return decodeUint(v[0], f[0])
}

// change is what one entry does: the channel's new state and extra
// conditional writes, computed from what the ledger holds.
type change struct {
	state *voucher.State
	extra []interfaces.KVSwapEntry
}

// apply appends an entry of kind with payload, recomputing its change
// from the current state until its compare-and-swap applies.
func (l *KVLedger) apply(ctx context.Context, kind byte, epoch uint64, payload []byte, id [voucher.IDLen]byte, f func(cur *voucher.State) (*change, error)) (*Record, error) {
	for {
		vals, found, err := l.get(ctx, []byte("Lh"), channelKey(id))
		if err != nil {
			return nil, err
		}
		var cur *voucher.State
		if found[1] {
			if cur, err = voucher.ParseState(vals[1]); err != nil {
				return nil, err
			}
		}
		ch, err := f(cur)
		if err != nil {
			return nil, err
		}
		var seq uint64
		var prev [32]byte
		if found[0] {
			if len(vals[0]) != 40 {
				return nil, fmt.Errorf("pay-channels ledger: a head of %d bytes", len(vals[0]))
			}
			seq = binary.BigEndian.Uint64(vals[0]) + 1
			copy(prev[:], vals[0][8:])
		}
		ch.state.Seq = seq
		entry := binary.BigEndian.AppendUint64(nil, seq)
		entry = append(entry, prev[:]...)
		entry = binary.BigEndian.AppendUint64(entry, epoch)
		entry = append(entry, kind)
		entry = append(entry, payload...)
		entry = append(entry, ed25519.Sign(l.key, entry)...)
		h := sha256.Sum256(entry)
		head := append(binary.BigEndian.AppendUint64(nil, seq), h[:]...)
		entries := []interfaces.KVSwapEntry{
			{Key: []byte("Lh"), Expected: vals[0], ExpectAbsent: !found[0], Value: head},
			{Key: binary.BigEndian.AppendUint64([]byte("Le"), seq), ExpectAbsent: true, Value: entry},
			{Key: channelKey(id), Expected: vals[1], ExpectAbsent: !found[1], Value: ch.state.Marshal()},
		}
		entries = append(entries, ch.extra...)
		resp, err := l.sw.KVSwap(ctx, &interfaces.KVSwapRequest{Namespace: LedgerNamespace, Entries: entries, All: true})
		if err != nil {
			return nil, fmt.Errorf("pay-channels ledger: appending: %w", err)
		}
		if len(resp.Applied) != len(entries) {
			return nil, fmt.Errorf("pay-channels ledger: %w", interfaces.ErrMalformedReply)
		}
		if resp.Applied[0] {
			return &Record{State: *ch.state, Receipt: voucher.SignReceipt(ch.state, l.key)}, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// Open records a new channel: the payer's signature verifies, the deposit
// is at most MaxDeposit, the expiry within MaxEpochs, and the pair has no
// channel still open (one channel per client and provider at a time).
func (l *KVLedger) Open(ctx context.Context, o *voucher.Open, epoch uint64) (*Record, error) {
	if err := o.Verify(); err != nil {
		return nil, refused("%v", err)
	}
	if o.Deposit == 0 || o.Deposit > l.cfg.MaxDeposit {
		return nil, refused("a deposit of %d (1 to %d)", o.Deposit, l.cfg.MaxDeposit)
	}
	if o.Expiry <= epoch || o.Expiry-epoch > l.cfg.MaxEpochs {
		return nil, refused("expiry epoch %d opened in epoch %d (at most %d epochs)", o.Expiry, epoch, l.cfg.MaxEpochs)
	}
	id := o.ID()
	pair := append(append([]byte("Lp"), o.Payer[:]...), o.Payee[:]...)
	return l.apply(ctx, entryOpen, epoch, o.Marshal(), id, func(cur *voucher.State) (*change, error) {
		if cur != nil {
			return nil, refused("channel %x exists", id[:8])
		}
		vals, found, err := l.get(ctx, pair)
		if err != nil {
			return nil, err
		}
		if found[0] {
			var old [voucher.IDLen]byte
			copy(old[:], vals[0])
			st, err := l.Channel(ctx, old)
			if err != nil {
				return nil, err
			}
			if st.Closing == 0 && epoch < st.Expiry {
				return nil, refused("the pair has channel %x open until epoch %d", old[:8], st.Expiry)
			}
		}
		return &change{
			state: &voucher.State{ID: id, Payer: o.Payer, Payee: o.Payee, Deposit: o.Deposit, Opened: epoch, Expiry: o.Expiry},
			extra: []interfaces.KVSwapEntry{{Key: pair, Expected: vals[0], ExpectAbsent: !found[0], Value: id[:]}},
		}, nil
	})
}

// take checks v against st and returns st with v as its newest voucher.
func take(st *voucher.State, v *voucher.Voucher) (*voucher.State, error) {
	if err := v.Verify(st.Payer); err != nil {
		return nil, refused("%v", err)
	}
	if v.Amount > st.Deposit {
		return nil, refused("a voucher of %d over the deposit of %d", v.Amount, st.Deposit)
	}
	if v.Nonce <= st.Nonce || v.Amount < st.Amount {
		return nil, fmt.Errorf("%w: nonce %d, amount %d; the ledger holds nonce %d, amount %d", ErrStale, v.Nonce, v.Amount, st.Nonce, st.Amount)
	}
	n := *st
	n.Nonce, n.Amount = v.Nonce, v.Amount
	return &n, nil
}

// Claim takes a newer voucher of a channel not yet settled whose dispute
// window is not over.
func (l *KVLedger) Claim(ctx context.Context, v *voucher.Voucher, epoch uint64) (*Record, error) {
	return l.apply(ctx, entryClaim, epoch, v.Marshal(), v.Channel, func(cur *voucher.State) (*change, error) {
		if cur == nil {
			return nil, refused("no channel %x", v.Channel[:8])
		}
		if cur.Settled || epoch >= cur.SettlesAt(l.cfg.DisputeEpochs) {
			return nil, refused("channel %x is settled", v.Channel[:8])
		}
		n, err := take(cur, v)
		if err != nil {
			return nil, err
		}
		return &change{state: n}, nil
	})
}

// Close starts the dispute window of an open channel, taking the payer's
// voucher if it is newer than the ledger's (an older one is ignored: the
// close still counts).
func (l *KVLedger) Close(ctx context.Context, c *voucher.Close, epoch uint64) (*Record, error) {
	if epoch == 0 {
		return nil, refused("a close in epoch 0")
	}
	return l.apply(ctx, entryClose, epoch, c.Marshal(), c.Channel, func(cur *voucher.State) (*change, error) {
		if cur == nil {
			return nil, refused("no channel %x", c.Channel[:8])
		}
		if err := c.Verify(cur.Payer); err != nil {
			return nil, refused("%v", err)
		}
		if cur.Closing != 0 || cur.Settled || epoch >= cur.Expiry {
			return nil, refused("channel %x is closed", c.Channel[:8])
		}
		n := *cur
		if v := c.Voucher; v != nil {
			if v.Channel != c.Channel {
				return nil, refused("a close carrying another channel's voucher")
			}
			if t, err := take(cur, v); err == nil {
				n = *t
			} else if !errors.Is(err, ErrStale) {
				return nil, err
			}
		}
		n.Closing = epoch
		return &change{state: &n}, nil
	})
}

// Settle pays a channel out once its dispute window is over: its newest
// voucher's amount to the payee, the rest of the deposit to the payer.
func (l *KVLedger) Settle(ctx context.Context, id [voucher.IDLen]byte, epoch uint64) (*Record, error) {
	s := voucher.Settle{Channel: id}
	return l.apply(ctx, entrySettle, epoch, s.Marshal(), id, func(cur *voucher.State) (*change, error) {
		if cur == nil {
			return nil, refused("no channel %x", id[:8])
		}
		if cur.Settled {
			return nil, refused("channel %x is settled", id[:8])
		}
		if at := cur.SettlesAt(l.cfg.DisputeEpochs); epoch < at {
			return nil, refused("channel %x settles from epoch %d", id[:8], at)
		}
		n := *cur
		n.Settled = true
		var extra []interfaces.KVSwapEntry
		add := map[[voucher.KeyLen]byte]uint64{n.Payee: n.Amount}
		add[n.Payer] += n.Refund()
		for _, k := range [][voucher.KeyLen]byte{n.Payee, n.Payer} {
			if _, ok := add[k]; !ok {
				continue
			}
			key := append([]byte("La"), k[:]...)
			vals, found, err := l.get(ctx, key)
			if err != nil {
				return nil, err
			}
			b, err := decodeUint(vals[0], found[0])
			if err != nil {
				return nil, err
			}
			extra = append(extra, interfaces.KVSwapEntry{Key: key, Expected: vals[0], ExpectAbsent: !found[0], Value: binary.BigEndian.AppendUint64(nil, b+add[k])})
			delete(add, k)
		}
		return &change{state: &n, extra: extra}, nil
	})
}

// VerifyLog reads the whole log and checks that every entry is signed by
// the ledger key and chained to the one before, returning how many there
// are: what an auditor of the ledger does.
func (l *KVLedger) VerifyLog(ctx context.Context) (uint64, error) {
	var prev [32]byte
	var n uint64
	for {
		vals, found, err := l.get(ctx, binary.BigEndian.AppendUint64([]byte("Le"), n))
		if err != nil {
			return n, err
		}
		if !found[0] {
			break
		}
		e := vals[0]
		if len(e) < 8+32+8+1+ed25519.SignatureSize {
			return n, fmt.Errorf("pay-channels ledger: entry %d of %d bytes", n, len(e))
		}
		body, sig := e[:len(e)-ed25519.SignatureSize], e[len(e)-ed25519.SignatureSize:]
		if binary.BigEndian.Uint64(body) != n || !bytes.Equal(body[8:40], prev[:]) {
			return n, fmt.Errorf("pay-channels ledger: entry %d is not chained to the one before", n)
		}
		if !ed25519.Verify(l.pub[:], body, sig) {
			return n, fmt.Errorf("pay-channels ledger: entry %d: %w", n, voucher.ErrBadSignature)
		}
		prev = sha256.Sum256(e)
		n++
	}
	vals, found, err := l.get(ctx, []byte("Lh"))
	if err != nil {
		return n, err
	}
	if found[0] && (len(vals[0]) != 40 || binary.BigEndian.Uint64(vals[0]) != n-1 || !bytes.Equal(vals[0][8:], prev[:])) {
		return n, errors.New("pay-channels ledger: the head does not name the last entry")
	}
	return n, nil
}
