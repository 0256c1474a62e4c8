// Package channels is the node half of the payment-channel accounting
// design (README.md; docs/SPEC.md, "Accounting: payment channels"): each
// client opens a unidirectional channel to its provider on a ledger, with
// a deposit and an expiry, and pays for packets with Ed25519-signed
// vouchers (channel, nonce, cumulative amount), one per Redeem. The
// provider keeps only the newest voucher of each channel, durable before
// it grants a packet, and claims it on the ledger once per epoch; after a
// close and its dispute window the channel settles on the newest voucher
// either side presented. The client half is package wallet below it; the
// formats both use are package voucher.
//
// State lives in the host KV (interfaces.Host), which must offer
// compare-and-swap: the provider's payee key, the newest voucher per
// channel, what it claimed, the amount paid per epoch and the work nodes
// report; Sotto's own ledger (KVLedger) lives beside it in its own
// namespace.
package channels

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
	"github.com/sottonet/sotto/interfaces/worklog"
	"github.com/sottonet/sotto/plugins/pay-channels/voucher"
)

// Config is the plugin's JSON config.
type Config struct {
	// Price is what one packet costs, in micro-units.
	Price uint64 `json:"price_per_packet"`
	// PacketsPerVoucher is how many packets a wallet should pay for with
	// one voucher (published; the provider grants what each voucher pays).
	PacketsPerVoucher uint32 `json:"packets_per_voucher"`
	// MaxDeposit bounds a channel's deposit on the ledger.
	MaxDeposit uint64 `json:"max_deposit"`
	// MaxChannelEpochs bounds how long a channel stays open.
	MaxChannelEpochs uint32 `json:"max_channel_epochs"`
	// DisputeEpochs is the window between a close and the settlement.
	DisputeEpochs uint32 `json:"dispute_epochs"`
}

// Defaults of Config.
const (
	DefaultPrice             = 10
	DefaultPacketsPerVoucher = 100
	DefaultMaxDeposit        = 10_000_000
	DefaultMaxChannelEpochs  = 1024
	DefaultDisputeEpochs     = 2
)

// ParseConfig decodes raw JSON (empty means defaults), fills defaults and
// validates, refusing unknown keys.
func ParseConfig(raw []byte) (Config, error) {
	var c Config
	if err := interfaces.DecodeConfig(raw, &c); err != nil {
		return c, fmt.Errorf("pay-channels config: %w", err)
	}
	if c.Price == 0 {
		c.Price = DefaultPrice
	}
	if c.PacketsPerVoucher == 0 {
		c.PacketsPerVoucher = DefaultPacketsPerVoucher
	}
	if c.MaxDeposit == 0 {
		c.MaxDeposit = DefaultMaxDeposit
	}
	if c.MaxChannelEpochs == 0 {
		c.MaxChannelEpochs = DefaultMaxChannelEpochs
	}
	if c.DisputeEpochs == 0 {
		c.DisputeEpochs = DefaultDisputeEpochs
	}
	if c.MaxDeposit/c.Price < uint64(c.PacketsPerVoucher) {
		return c, fmt.Errorf("%w: pay-channels config: max_deposit %d does not pay for one voucher of %d packets at %d", interfaces.ErrInvalidArgument, c.MaxDeposit, c.PacketsPerVoucher, c.Price)
	}
	return c, nil
}

func (c Config) ledger() LedgerConfig {
	return LedgerConfig{MaxDeposit: c.MaxDeposit, MaxEpochs: uint64(c.MaxChannelEpochs), DisputeEpochs: uint64(c.DisputeEpochs)}
}

// Namespace is the KV namespace of the provider's state. Keys: "k" → the
// payee's Ed25519 seed; "o" client → the client's newest channel; "v" channel → the newest voucher accepted; "l"
// channel → the voucher's nonce last claimed on the ledger; "r" epoch →
// amount paid in the epoch; "w" epoch node → work counts; "b" epoch
// SHA-256(batch ID) → counted batch.
const Namespace = "pay-channels"

// Provider implements interfaces.Accounting.
type Provider struct {
	cfg    Config
	kv     interfaces.KV
	sw     interfaces.KVSwapper
	ledger Ledger
	// shared: the ledger is a KVLedger on kv (OpenWithKVLedger), in the
	// provider's namespace.
	shared bool
	payee  [voucher.KeyLen]byte
	params []byte
}

var _ interfaces.Accounting = (*Provider)(nil)

// Open returns the provider kept in kv (which must offer compare-and-swap)
// settling against ledger. Opening it again on the same KV (a restart)
// finds its key, vouchers and counts.
func Open(ctx context.Context, cfg Config, kv interfaces.KV, ledger Ledger) (*Provider, error) {
	sw, ok := kv.(interfaces.KVSwapper)
	if !ok {
		return nil, fmt.Errorf("%w: pay-channels: the KV (%T) offers no compare-and-swap", interfaces.ErrUnavailable, kv)
	}
	seed, err := loadOrCreateSeed(ctx, kv, sw, Namespace, []byte("k"))
	if err != nil {
		return nil, fmt.Errorf("pay-channels: %w", err)
	}
	p := &Provider{cfg: cfg, kv: kv, sw: sw, ledger: ledger}
	// The payee key is the provider's name on the ledger; it signs nothing
	// here (Sotto's ledger settles to it), a deployment's chain would.
	k := ed25519.NewKeyFromSeed(seed)
	clear(seed)
	copy(p.payee[:], k.Public().(ed25519.PublicKey))
	clear(k)
	pp := voucher.Params{Payee: p.payee, Ledger: ledger.Key(), Price: cfg.Price, Packets: cfg.PacketsPerVoucher,
		MaxDeposit: cfg.MaxDeposit, Dispute: cfg.DisputeEpochs, MaxEpochs: cfg.MaxChannelEpochs}
	p.params = pp.Marshal()
	return p, nil
}

// OpenWithKVLedger opens the provider and Sotto's own ledger on one KV.
func OpenWithKVLedger(ctx context.Context, cfg Config, kv interfaces.KV) (*Provider, *KVLedger, error) {
	l, err := OpenKVLedger(ctx, cfg.ledger(), kv)
	if err != nil {
		return nil, nil, err
	}
	p, err := Open(ctx, cfg, kv, l)
	if err != nil {
		return nil, nil, err
	}
	p.shared = true
	return p, l, nil
}

// New returns a provider and its ledger in memory (an interfaces/memkv):
// for tests.
func New(cfg Config) (*Provider, *KVLedger) {
	p, l, err := OpenWithKVLedger(context.Background(), cfg, memkv.New())
	if err != nil {
		panic(err)
	}
	return p, l
}

// Plugin is what the plugin's main serves: the factory opens the provider
// and Sotto's ledger in the host KV and refuses to start without one.
func Plugin() interfaces.Plugin {
	return interfaces.AccountingPlugin(func(ctx context.Context, raw []byte) (interfaces.Accounting, error) {
		cfg, err := ParseConfig(raw)
		if err != nil {
			return nil, err
		}
		h, ok := interfaces.HostFrom(ctx)
		if !ok || h.KV == nil {
			return nil, fmt.Errorf("%w: pay-channels keeps its vouchers and ledger in the host KV, and the host offers none", interfaces.ErrUnavailable)
		}
		p, _, err := OpenWithKVLedger(ctx, cfg, h.KV)
		return p, err
	})
}

// Payee is the provider's key on the ledger.
func (p *Provider) Payee() [voucher.KeyLen]byte { return p.payee }

// Info publishes the channel terms (voucher.Params).
func (p *Provider) Info(ctx context.Context, _ *interfaces.AccountingInfoRequest) (*interfaces.AccountingInfoResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &interfaces.AccountingInfoResponse{Scheme: voucher.Scheme, Params: slices.Clone(p.params)}, nil
}

func malformed(err error) error { return fmt.Errorf("%w: %w", interfaces.ErrInvalidArgument, err) }

// Issue carries a client's open, close or settle request to the ledger
// and answers with the ledger's signed receipt. An open must name this
// provider as payee; a close must be signed by the channel's payer.
func (p *Provider) Issue(ctx context.Context, req *interfaces.IssueRequest) (*interfaces.IssueResponse, error) {
	if len(req.Request) > interfaces.MaxCredentialLen {
		return nil, malformed(fmt.Errorf("issue request of %d bytes", len(req.Request)))
	}
	r, err := voucher.ParseRequest(req.Request)
	if err != nil {
		return nil, malformed(err)
	}
	var rec *Record
	switch {
	case r.Open != nil:
		if r.Open.Payee != p.payee {
			return nil, fmt.Errorf("%w: pay-channels: a channel to another payee", interfaces.ErrPaymentRequired)
		}
		return p.open(ctx, r.Open, req)
	case r.Close != nil:
		rec, err = p.ledger.Close(ctx, r.Close, req.Epoch)
	case r.Settle != nil:
		rec, err = p.ledger.Settle(ctx, r.Settle.Channel, req.Epoch)
	}
	if err != nil {
		return nil, err
	}
	return &interfaces.IssueResponse{Response: rec.Receipt}, nil
}

// open opens a channel for the client req names, which may have one open
// channel at a time at this provider (whatever payer key it signs with):
// key "o" client → its newest channel.
func (p *Provider) open(ctx context.Context, o *voucher.Open, req *interfaces.IssueRequest) (*interfaces.IssueResponse, error) {
	if req.Client == (interfaces.ClientKey{}) {
		return nil, fmt.Errorf("%w: pay-channels: a channel is opened for an authenticated client, and none is named", interfaces.ErrPaymentRequired)
	}
	ok := append([]byte{'o'}, req.Client[:]...)
	got, err := p.kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: Namespace, Keys: [][]byte{ok}})
	if err != nil {
		return nil, fmt.Errorf("pay-channels: reading the client's channel: %w", err)
	}
	if len(got.Found) != 1 || len(got.Values) != 1 {
		return nil, fmt.Errorf("pay-channels: %w", interfaces.ErrMalformedReply)
	}
	if got.Found[0] {
		var id [voucher.IDLen]byte
		if len(got.Values[0]) != len(id) {
			return nil, fmt.Errorf("pay-channels: a client's channel of %d bytes in the KV", len(got.Values[0]))
		}
		copy(id[:], got.Values[0])
		st, err := p.ledger.Channel(ctx, id)
		if err != nil && !errors.Is(err, interfaces.ErrNotFound) {
			return nil, err
		}
		if err == nil && st.Closing == 0 && !st.Settled && req.Epoch < st.Expiry {
			return nil, fmt.Errorf("%w: pay-channels: the client has channel %x open until epoch %d", interfaces.ErrPaymentRequired, id[:8], st.Expiry)
		}
	}
	rec, err := p.ledger.Open(ctx, o, req.Epoch)
	if err != nil {
		return nil, err
	}
	id := o.ID()
	// Two opens of one client at once may both pass the check above: the
	// later one written is remembered. Each has its own deposit.
	if _, err := p.kv.KVPut(ctx, &interfaces.KVPutRequest{Namespace: Namespace, Entries: []interfaces.KVEntry{{Key: ok, Value: id[:]}}}); err != nil {
		return nil, fmt.Errorf("pay-channels: noting the client's channel: %w", err)
	}
	return &interfaces.IssueResponse{Response: rec.Receipt}, nil
}

func voucherKey(id [voucher.IDLen]byte) []byte { return append([]byte{'v'}, id[:]...) }

// Redeem takes a voucher that pays more than the newest one of its
// channel: the voucher must be signed by the channel's payer, on an open
// channel to this provider, with a higher nonce, a higher amount and at
// most the deposit; it grants the packets the difference pays for (at
// most those asked). The voucher replaces the one before and the epoch's
// amount grows, in one compare-and-swap, before anything is granted. A
// refused voucher changes nothing.
func (p *Provider) Redeem(ctx context.Context, req *interfaces.RedeemRequest) (*interfaces.RedeemResponse, error) {
	if len(req.Credential) > interfaces.MaxCredentialLen {
		return nil, malformed(fmt.Errorf("credential of %d bytes", len(req.Credential)))
	}
	v, err := voucher.ParseVoucher(req.Credential)
	if err != nil {
		return nil, malformed(err)
	}
	if req.Packets == 0 {
		return nil, malformed(errors.New("a redeem of 0 packets"))
	}
	vk, rk := voucherKey(v.Channel), epochKey('r', req.Epoch)
	keys := [][]byte{vk, rk}
	var st *voucher.State
	if p.shared {
		// Sotto's ledger shares the namespace: the channel is read with
		// the voucher, and the swap below expects it unchanged, so a
		// close that lands meanwhile makes this Redeem look again.
		keys = append(keys, channelKey(v.Channel))
	} else if st, err = p.channel(ctx, v.Channel); err != nil {
		return nil, err
	}
	got, err := p.kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: Namespace, Keys: keys})
	if err != nil {
		return nil, fmt.Errorf("pay-channels: reading the newest voucher: %w", err)
	}
	if len(got.Found) != len(keys) || len(got.Values) != len(keys) {
		return nil, fmt.Errorf("pay-channels: %w", interfaces.ErrMalformedReply)
	}
	cur, found := got.Values, got.Found
	verified := false
	for {
		if p.shared {
			if !found[2] {
				return nil, fmt.Errorf("%w: pay-channels: no channel %x on the ledger", interfaces.ErrPaymentRequired, v.Channel[:8])
			}
			if st, err = voucher.ParseState(cur[2]); err != nil {
				return nil, fmt.Errorf("pay-channels: the ledger's channel: %w", err)
			}
		}
		if err := p.payable(st, v, req.Epoch, &verified); err != nil {
			return nil, err
		}
		var prev voucher.Voucher
		if found[0] {
			pv, err := voucher.ParseVoucher(cur[0])
			if err != nil {
				return nil, fmt.Errorf("pay-channels: the stored voucher: %w", err)
			}
			prev = *pv
		}
		if v.Nonce <= prev.Nonce || v.Amount <= prev.Amount {
			return nil, fmt.Errorf("%w: nonce %d, amount %d; the provider holds nonce %d, amount %d", ErrStale, v.Nonce, v.Amount, prev.Nonce, prev.Amount)
		}
		delta := v.Amount - prev.Amount
		granted := min(req.Packets, delta/p.cfg.Price)
		if granted == 0 {
			return nil, fmt.Errorf("%w: pay-channels: a voucher of %d more pays for no packet at %d", interfaces.ErrPaymentRequired, delta, p.cfg.Price)
		}
		sum, err := decodeUint(cur[1], found[1])
		if err != nil {
			return nil, err
		}
		entries := []interfaces.KVSwapEntry{
			{Key: vk, Expected: cur[0], ExpectAbsent: !found[0], Value: v.Marshal()},
			{Key: rk, Expected: cur[1], ExpectAbsent: !found[1], Value: binary.BigEndian.AppendUint64(nil, sum+delta)},
		}
		if p.shared {
			entries = append(entries, interfaces.KVSwapEntry{Key: keys[2], Expected: cur[2], Value: cur[2]})
		}
		resp, err := p.sw.KVSwap(ctx, &interfaces.KVSwapRequest{Namespace: Namespace, All: true, Entries: entries})
		if err != nil {
			return nil, fmt.Errorf("pay-channels: storing the voucher: %w", err)
		}
		if len(resp.Applied) != len(entries) || len(resp.Found) != len(entries) || len(resp.Current) != len(entries) {
			return nil, fmt.Errorf("pay-channels: storing the voucher: %w", interfaces.ErrMalformedReply)
		}
		if resp.Applied[0] {
			return &interfaces.RedeemResponse{Granted: granted, Receipt: binary.BigEndian.AppendUint64(nil, v.Amount)}, nil
		}
		// Nothing was written; Current holds what each entry met.
		cur, found = resp.Current, resp.Found
	}
}

// channel reads a channel from a ledger of its own.
func (p *Provider) channel(ctx context.Context, id [voucher.IDLen]byte) (*voucher.State, error) {
	st, err := p.ledger.Channel(ctx, id)
	if errors.Is(err, interfaces.ErrNotFound) {
		return nil, fmt.Errorf("%w: pay-channels: no channel %x on the ledger", interfaces.ErrPaymentRequired, id[:8])
	}
	return st, err
}

// payable checks that v may pay on st at epoch: a channel to this
// provider, open, v within the deposit and signed by the payer (checked
// once per Redeem: the payer never changes).
func (p *Provider) payable(st *voucher.State, v *voucher.Voucher, epoch uint64, verified *bool) error {
	switch {
	case st.ID != v.Channel:
		return fmt.Errorf("%w: pay-channels: the ledger's channel is not the voucher's", interfaces.ErrPaymentRequired)
	case st.Payee != p.payee:
		return fmt.Errorf("%w: pay-channels: channel %x pays another provider", interfaces.ErrPaymentRequired, v.Channel[:8])
	case st.Closing != 0 || st.Settled || epoch >= st.Expiry:
		return fmt.Errorf("%w: pay-channels: channel %x is closed", interfaces.ErrPaymentRequired, v.Channel[:8])
	}
	if !*verified {
		if err := v.Verify(st.Payer); err != nil {
			return fmt.Errorf("%w: %w", interfaces.ErrPaymentRequired, err)
		}
		*verified = true
	}
	if v.Amount > st.Deposit {
		return fmt.Errorf("%w: pay-channels: a voucher of %d over the deposit of %d", interfaces.ErrPaymentRequired, v.Amount, st.Deposit)
	}
	return nil
}

// Settle claims, on the ledger, every channel's newest voucher the ledger
// has not seen (the amount each channel paid since the last claim), and
// pays out every channel whose dispute window is over at epoch. It is
// idempotent; a voucher the ledger already holds one newer than (the
// client presented it in a close) is not claimed again. RecordWork runs it
// for the epochs before the one reported; operators may run it too.
func (p *Provider) Settle(ctx context.Context, epoch uint64) (claimed uint64, err error) {
	var after []byte
	for {
		l, err := p.kv.KVList(ctx, &interfaces.KVListRequest{Namespace: Namespace, Prefix: []byte{'v'}, After: after})
		if err != nil {
			return claimed, fmt.Errorf("pay-channels: listing vouchers: %w", err)
		}
		if len(l.Keys) == 0 {
			return claimed, nil
		}
		after = l.Keys[len(l.Keys)-1]
		for _, k := range l.Keys {
			if len(k) != 1+voucher.IDLen {
				continue
			}
			var id [voucher.IDLen]byte
			copy(id[:], k[1:])
			n, err := p.settleOne(ctx, id, epoch)
			if err != nil {
				return claimed, err
			}
			claimed += n
		}
	}
}

func (p *Provider) settleOne(ctx context.Context, id [voucher.IDLen]byte, epoch uint64) (uint64, error) {
	lk := append([]byte{'l'}, id[:]...)
	got, err := p.kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: Namespace, Keys: [][]byte{voucherKey(id), lk}})
	if err != nil {
		return 0, fmt.Errorf("pay-channels: reading a voucher: %w", err)
	}
	if len(got.Found) != 2 || !got.Found[0] {
		return 0, nil
	}
	v, err := voucher.ParseVoucher(got.Values[0])
	if err != nil {
		return 0, err
	}
	done, err := decodeUint(got.Values[1], got.Found[1])
	if err != nil {
		return 0, err
	}
	st, err := p.ledger.Channel(ctx, id)
	if err != nil {
		return 0, err
	}
	var claimed uint64
	if done < v.Nonce && !st.Settled {
		before := st.Amount
		rec, err := p.ledger.Claim(ctx, v, epoch)
		switch {
		case err == nil:
			claimed = rec.State.Amount - before
			st = &rec.State
		case errors.Is(err, ErrStale), errors.Is(err, interfaces.ErrPaymentRequired):
			// The ledger holds a newer voucher (the client's), or the
			// window is over: nothing more to claim for this one.
		default:
			return 0, err
		}
		mark := binary.BigEndian.AppendUint64(nil, v.Nonce)
		if _, err := p.sw.KVSwap(ctx, &interfaces.KVSwapRequest{Namespace: Namespace, Entries: []interfaces.KVSwapEntry{
			{Key: lk, Expected: got.Values[1], ExpectAbsent: !got.Found[1], Value: mark}}}); err != nil {
			return claimed, fmt.Errorf("pay-channels: noting a claim: %w", err)
		}
		got.Values[1], got.Found[1] = mark, true
	}
	if !st.Settled && epoch >= st.SettlesAt(p.ledger.Dispute()) {
		rec, err := p.ledger.Settle(ctx, id, epoch)
		if err != nil && !errors.Is(err, interfaces.ErrPaymentRequired) {
			return claimed, err
		}
		if err == nil {
			st = &rec.State
		}
	}
	if st.Settled {
		// Paid out: the ledger refuses every voucher of the channel from
		// now on, so its newest voucher and claim mark can go.
		if _, err := p.sw.KVSwap(ctx, &interfaces.KVSwapRequest{Namespace: Namespace, All: true, Entries: []interfaces.KVSwapEntry{
			{Key: voucherKey(id), Expected: got.Values[0], Delete: true},
			{Key: lk, Expected: got.Values[1], ExpectAbsent: !got.Found[1], Delete: true},
		}}); err != nil {
			return claimed, fmt.Errorf("pay-channels: forgetting a settled channel: %w", err)
		}
	}
	return claimed, nil
}

// RecordWork adds the records to the epoch's counts, once per BatchID, in
// one all-or-nothing swap retried on conflict; then it settles on the
// ledger what was paid before req.Epoch (best effort: a failure is logged
// and retried at the next report).
func (p *Provider) RecordWork(ctx context.Context, req *interfaces.RecordWorkRequest) (*interfaces.RecordWorkResponse, error) {
	r, err := p.recordWork(ctx, req)
	if err == nil && req.Epoch > 0 {
		if _, serr := p.Settle(ctx, req.Epoch); serr != nil && ctx.Err() == nil {
			slog.Warn("pay-channels: settling on the ledger", "epoch", req.Epoch, "err", serr)
		}
	}
	return r, err
}

func (p *Provider) recordWork(ctx context.Context, req *interfaces.RecordWorkRequest) (*interfaces.RecordWorkResponse, error) {
	if err := p.work().Record(ctx, req); err != nil {
		return nil, err
	}
	return &interfaces.RecordWorkResponse{}, nil
}

// Unit is the unit of Earnings' amounts.
const Unit = "micro-units"

// Earnings splits the epoch's pool (what vouchers redeemed in the epoch
// paid, in micro-units) among the nodes by the packets they reported
// forwarding and delivering, as pay-blindsig does, so reports compare
// across designs; what integer division leaves over is not paid. Probes
// count as no work.
func (p *Provider) Earnings(ctx context.Context, req *interfaces.EarningsRequest) (*interfaces.EarningsResponse, error) {
	return p.work().Earnings(ctx, req.Epoch, Unit, func(ctx context.Context) (*big.Int, error) {
		got, err := p.kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: Namespace, Keys: [][]byte{epochKey('r', req.Epoch)}})
		if err != nil {
			return nil, fmt.Errorf("pay-channels: reading the epoch's amount: %w", err)
		}
		if len(got.Found) != 1 {
			return nil, fmt.Errorf("pay-channels: %w", interfaces.ErrMalformedReply)
		}
		paid, err := decodeUint(got.Values[0], got.Found[0])
		if err != nil {
			return nil, err
		}
		return new(big.Int).SetUint64(paid), nil
	})
}

// work is the provider's work ledger: "w" and "b" keys in Namespace,
// beside the vouchers and the epochs' amounts.
func (p *Provider) work() *worklog.Log {
	return &worklog.Log{KV: p.kv, Swapper: p.sw, Namespace: Namespace, Name: "pay-channels"}
}

func decodeUint(b []byte, found bool) (uint64, error) {
	if !found {
		return 0, nil
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("pay-channels: a counter of %d bytes in the KV", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

func epochKey(tag byte, epoch uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tag}, epoch)
}
