// Package blindsig is the node half of the blind-signature accounting
// design (README.md; docs/SPEC.md, "Accounting: blind signatures"): each
// provider issues Privacy-Pass-style tokens to its own clients with an
// RFC 9474 blind RSA key per key period (rotated like the Sphinx keys,
// with a grace period), and spends them, once, when a client Redeems one
// at that provider. The client half is package wallet below it; the
// formats both use are package token.
//
// State lives in the host KV (interfaces.Host), which must offer
// compare-and-swap: issuer keys, the spent set, issuance quotas and
// vouchers, tokens redeemed per epoch and the work nodes report. Every
// change is one all-or-nothing KVSwap, durable before the call returns, so
// a spent token stays spent across a restart of the plugin or the node,
// and of concurrent redeems of one token exactly one wins.
package blindsig

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
	"github.com/sottonet/sotto/interfaces/worklog"
	"github.com/sottonet/sotto/plugins/pay-blindsig/token"
)

// Config is the plugin's JSON config.
type Config struct {
	// Policy is "free" (FreeTokens per client and epoch for nothing) or
	// "voucher" (tokens bought with vouchers signed by VoucherKeys).
	Policy string `json:"policy"`
	// FreeTokens is the free policy's quota per client and epoch.
	FreeTokens uint32 `json:"free_tokens_per_epoch"`
	// VoucherKeys are the operator (payment rail) Ed25519 public keys, hex.
	VoucherKeys []string `json:"voucher_keys"`
	// PacketsPerToken is what one token is worth.
	PacketsPerToken uint32 `json:"packets_per_token"`
	// KeyEpochs is how many epochs one issuer key signs for.
	KeyEpochs uint64 `json:"key_epochs"`
	// GraceEpochs is how long after its last signing epoch a key's tokens
	// are still accepted.
	GraceEpochs uint64 `json:"grace_epochs"`
	// MaxBatch bounds the tokens of one Issue (1 to token.MaxBatch).
	MaxBatch uint8 `json:"max_batch"`
	// TokenValue is what one redeemed token puts into its epoch's reward
	// pool, in micro-units.
	TokenValue uint64 `json:"token_value"`
}

// Defaults of Config.
const (
	DefaultPolicy          = "free"
	DefaultFreeTokens      = 64
	DefaultPacketsPerToken = 100
	DefaultKeyEpochs       = 1
	DefaultGraceEpochs     = 1
	DefaultMaxBatch        = 16
	DefaultTokenValue      = 1000
)

// ParseConfig decodes raw JSON (empty means defaults), fills defaults and
// validates, refusing unknown keys.
func ParseConfig(raw []byte) (Config, error) {
	var c Config
	if err := interfaces.DecodeConfig(raw, &c); err != nil {
		return c, fmt.Errorf("pay-blindsig config: %w", err)
	}
	if c.Policy == "" {
		c.Policy = DefaultPolicy
	}
	if c.FreeTokens == 0 {
		c.FreeTokens = DefaultFreeTokens
	}
	if c.PacketsPerToken == 0 {
		c.PacketsPerToken = DefaultPacketsPerToken
	}
	if c.KeyEpochs == 0 {
		c.KeyEpochs = DefaultKeyEpochs
	}
	if c.GraceEpochs == 0 {
		c.GraceEpochs = DefaultGraceEpochs
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.TokenValue == 0 {
		c.TokenValue = DefaultTokenValue
	}
	var errs []error
	switch c.Policy {
	case "free":
	case "voucher":
		if len(c.VoucherKeys) == 0 {
			errs = append(errs, errors.New("policy voucher needs voucher_keys"))
		}
	default:
		errs = append(errs, fmt.Errorf("policy %q (free or voucher)", c.Policy))
	}
	if _, err := c.operators(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxBatch > token.MaxBatch {
		errs = append(errs, fmt.Errorf("max_batch %d (at most %d)", c.MaxBatch, token.MaxBatch))
	}
	if c.KeyEpochs > 1<<20 || c.GraceEpochs > 1<<20 {
		errs = append(errs, errors.New("key_epochs and grace_epochs at most 2^20"))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("%w: pay-blindsig config: %w", interfaces.ErrInvalidArgument, err)
	}
	return c, nil
}

func (c Config) operators() ([]ed25519.PublicKey, error) {
	var ks []ed25519.PublicKey
	for _, h := range c.VoucherKeys {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("voucher key %q is not %d bytes of hex", h, ed25519.PublicKeySize)
		}
		ks = append(ks, ed25519.PublicKey(b))
	}
	return ks, nil
}

func (c Config) policy() token.Policy {
	if c.Policy == "voucher" {
		return token.PolicyVoucher
	}
	return token.PolicyFree
}

// Namespace is the KV namespace of the plugin's state. Keys: "k" period
// → issuer key (PKCS #8); "s" period spentID → epoch spent; "q" epoch
// client → tokens issued (free) — these three are dropped once no Redeem
// or Issue needs them (prune.go); "v" voucherID → tokens issued; "r" epoch
// → tokens redeemed; "w" epoch node → work counts; "b" epoch SHA-256(batch
// ID) → counted batch.
const Namespace = "pay-blindsig"

// Issuer implements interfaces.Accounting.
type Issuer struct {
	cfg       Config
	operators []ed25519.PublicKey
	kv        interfaces.KV
	sw        interfaces.KVSwapper

	mu       sync.Mutex
	keys     map[uint64]*rsa.PrivateKey // key periods loaded
	pruning  bool                       // a pass of prune.go is running
	prunedAt uint64                     // the epoch of the last pass that finished
	gen      sync.Mutex                 // one key generation at a time
	pruneWG  sync.WaitGroup
}

var _ interfaces.Accounting = (*Issuer)(nil)

// Open returns the issuer kept in kv, which must offer compare-and-swap.
// Opening it again on the same KV (a restart) finds its keys, spent set,
// quotas and counts.
func Open(ctx context.Context, cfg Config, kv interfaces.KV) (*Issuer, error) {
	sw, ok := kv.(interfaces.KVSwapper)
	if !ok {
		return nil, fmt.Errorf("%w: pay-blindsig: the KV (%T) offers no compare-and-swap", interfaces.ErrUnavailable, kv)
	}
	if _, err := sw.KVSwap(ctx, &interfaces.KVSwapRequest{Namespace: Namespace}); err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			return nil, fmt.Errorf("%w: pay-blindsig: the KV offers no compare-and-swap: %w", interfaces.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("pay-blindsig: reaching the KV: %w", err)
	}
	ops, err := cfg.operators()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", interfaces.ErrInvalidArgument, err)
	}
	return &Issuer{cfg: cfg, operators: ops, kv: kv, sw: sw, keys: map[uint64]*rsa.PrivateKey{}}, nil
}

// New returns an issuer in memory (an interfaces/memkv): for tests.
func New(cfg Config) *Issuer {
	i, err := Open(context.Background(), cfg, memkv.New())
	if err != nil {
		panic(err)
	}
	return i
}

// Plugin is what the plugin's main serves: the factory opens the issuer in
// the host KV and refuses to start without one.
func Plugin() interfaces.Plugin {
	return interfaces.AccountingPlugin(func(ctx context.Context, raw []byte) (interfaces.Accounting, error) {
		cfg, err := ParseConfig(raw)
		if err != nil {
			return nil, err
		}
		h, ok := interfaces.HostFrom(ctx)
		if !ok || h.KV == nil {
			return nil, fmt.Errorf("%w: pay-blindsig keeps its spent tokens in the host KV, and the host offers none", interfaces.ErrUnavailable)
		}
		return Open(ctx, cfg, h.KV)
	})
}

// period is the key period of an epoch.
func (i *Issuer) period(epoch uint64) uint64 { return epoch / i.cfg.KeyEpochs }

// validity is the epochs [from, until) in which tokens under period's key
// are accepted: its own epochs and GraceEpochs after them.
func (i *Issuer) validity(period uint64) (from, until uint64) {
	from = period * i.cfg.KeyEpochs
	return from, from + i.cfg.KeyEpochs + i.cfg.GraceEpochs
}

func keyKey(period uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'k'}, period) }

// key returns the issuer key of a period, generating (and storing) it when
// create is set and none exists; nil without create when there is none.
func (i *Issuer) key(ctx context.Context, period uint64, create bool) (*rsa.PrivateKey, error) {
	i.mu.Lock()
	k := i.keys[period]
	i.mu.Unlock()
	if k != nil {
		return k, nil
	}
	got, err := i.kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: Namespace, Keys: [][]byte{keyKey(period)}})
	if err != nil {
		return nil, fmt.Errorf("pay-blindsig: reading the issuer key: %w", err)
	}
	if len(got.Found) != 1 {
		return nil, fmt.Errorf("pay-blindsig: reading the issuer key: %w", interfaces.ErrMalformedReply)
	}
	if got.Found[0] {
		return i.remember(period, got.Values[0])
	}
	if !create {
		return nil, nil
	}
	i.gen.Lock()
	defer i.gen.Unlock()
	i.mu.Lock()
	k = i.keys[period]
	i.mu.Unlock()
	if k != nil {
		return k, nil
	}
	sk, err := rsa.GenerateKey(rand.Reader, token.KeyBits)
	if err != nil {
		return nil, fmt.Errorf("pay-blindsig: generating an issuer key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(sk)
	if err != nil {
		return nil, err
	}
	resp, err := i.sw.KVSwap(ctx, &interfaces.KVSwapRequest{Namespace: Namespace, Entries: []interfaces.KVSwapEntry{{Key: keyKey(period), ExpectAbsent: true, Value: der}}})
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("pay-blindsig: storing the issuer key: %w", err)
	}
	if len(resp.Applied) != 1 {
		return nil, fmt.Errorf("pay-blindsig: storing the issuer key: %w", interfaces.ErrMalformedReply)
	}
	if !resp.Applied[0] {
		// Another process stored one first: use it.
		return i.remember(period, resp.Current[0])
	}
	i.mu.Lock()
	i.keys[period] = sk
	i.forget(period)
	i.mu.Unlock()
	return sk, nil
}

func (i *Issuer) remember(period uint64, der []byte) (*rsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("pay-blindsig: the stored issuer key of period %d: %w", period, err)
	}
	sk, ok := k.(*rsa.PrivateKey)
	if !ok || sk.N.BitLen() != token.KeyBits {
		return nil, fmt.Errorf("pay-blindsig: the stored issuer key of period %d is not RSA-%d", period, token.KeyBits)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys[period] = sk
	i.forget(period)
	return sk, nil
}

// forget drops loaded keys far older than period (under i.mu). The stored
// copies stay: a restarted plugin reloads what it needs.
func (i *Issuer) forget(period uint64) {
	for p := range i.keys {
		if p+2+i.cfg.GraceEpochs/i.cfg.KeyEpochs < period {
			delete(i.keys, p)
		}
	}
}

// Info publishes the policy and the issuer key of req.Epoch's key period.
func (i *Issuer) Info(ctx context.Context, req *interfaces.AccountingInfoRequest) (*interfaces.AccountingInfoResponse, error) {
	period := i.period(req.Epoch)
	sk, err := i.key(ctx, period, true)
	if err != nil {
		return nil, err
	}
	from, until := i.validity(period)
	p := token.Params{
		Policy: i.cfg.policy(), PacketsPerToken: i.cfg.PacketsPerToken, MaxBatch: i.cfg.MaxBatch, FreeQuota: i.cfg.FreeTokens,
		KeyPeriod: period, ValidFrom: from, ValidUntil: until, PublicKey: &sk.PublicKey,
	}
	b, err := p.Marshal()
	if err != nil {
		return nil, err
	}
	return &interfaces.AccountingInfoResponse{Scheme: token.Scheme, Params: b}, nil
}

func malformed(err error) error { return fmt.Errorf("%w: %w", interfaces.ErrInvalidArgument, err) }

// Issue blind-signs the request's blinded messages with the key of the
// epoch's period, once the policy allows it: the free policy counts them
// against the client's quota of the epoch, the voucher policy against the
// voucher's tokens; either is counted (durably, by compare-and-swap)
// before anything is signed, and a request over it signs nothing.
func (i *Issuer) Issue(ctx context.Context, req *interfaces.IssueRequest) (*interfaces.IssueResponse, error) {
	if len(req.Request) > interfaces.MaxCredentialLen {
		return nil, malformed(fmt.Errorf("issue request of %d bytes", len(req.Request)))
	}
	r, err := token.ParseIssueRequest(req.Request)
	if err != nil {
		return nil, malformed(err)
	}
	n := len(r.Blinded)
	if n > int(i.cfg.MaxBatch) {
		return nil, malformed(fmt.Errorf("%d blinded messages, at most %d", n, i.cfg.MaxBatch))
	}
	if want := i.period(req.Epoch); r.KeyPeriod != want {
		return nil, fmt.Errorf("%w: tokens asked under key period %d; epoch %d signs with period %d", interfaces.ErrPaymentRequired, r.KeyPeriod, req.Epoch, want)
	}
	for j, b := range r.Blinded {
		if len(b) != token.SigLen {
			return nil, malformed(fmt.Errorf("blinded message %d", j))
		}
	}
	sk, err := i.key(ctx, r.KeyPeriod, true)
	if err != nil {
		return nil, err
	}
	// Check what can be checked before spending quota.
	for j, b := range r.Blinded {
		if new(bigInt).SetBytes(b).Cmp(sk.N) >= 0 {
			return nil, malformed(fmt.Errorf("blinded message %d is not below the modulus", j))
		}
	}
	switch i.cfg.policy() {
	case token.PolicyFree:
		if len(r.Voucher) != 0 {
			return nil, malformed(errors.New("a voucher under the free policy"))
		}
		if req.Client == (interfaces.ClientKey{}) {
			return nil, fmt.Errorf("%w: the free policy counts tokens per client, and no client is named", interfaces.ErrPaymentRequired)
		}
		k := binary.BigEndian.AppendUint64([]byte{'q'}, req.Epoch)
		k = append(k, req.Client[:]...)
		if err := i.take(ctx, k, uint64(n), uint64(i.cfg.FreeTokens), "the client's free tokens of this epoch"); err != nil {
			return nil, err
		}
	case token.PolicyVoucher:
		if len(r.Voucher) == 0 {
			return nil, fmt.Errorf("%w: the voucher policy needs a voucher", interfaces.ErrPaymentRequired)
		}
		v, err := token.ParseVoucher(r.Voucher)
		if err != nil {
			return nil, malformed(err)
		}
		if err := v.Verify(i.operators); err != nil {
			return nil, fmt.Errorf("%w: %w", interfaces.ErrPaymentRequired, err)
		}
		if req.Epoch > v.NotAfter {
			return nil, fmt.Errorf("%w: voucher expired after epoch %d", interfaces.ErrPaymentRequired, v.NotAfter)
		}
		if err := i.take(ctx, append([]byte{'v'}, v.ID[:]...), uint64(n), uint64(v.Tokens), "the voucher's tokens"); err != nil {
			return nil, err
		}
	}
	out := make([]byte, 0, n*token.SigLen)
	for _, b := range r.Blinded {
		s, err := token.BlindSign(sk, b)
		if err != nil {
			// Counted but not signed: the quota is the client's loss for
			// sending what no honest wallet sends.
			return nil, malformed(err)
		}
		out = append(out, s...)
	}
	return &interfaces.IssueResponse{Response: out}, nil
}

// take adds n to the counter at key if it stays at most limit.
func (i *Issuer) take(ctx context.Context, key []byte, n, limit uint64, what string) error {
	got, err := i.kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: Namespace, Keys: [][]byte{key}})
	if err != nil {
		return fmt.Errorf("pay-blindsig: reading %s: %w", what, err)
	}
	if len(got.Found) != 1 {
		return fmt.Errorf("pay-blindsig: %w", interfaces.ErrMalformedReply)
	}
	cur, found := got.Values[0], got.Found[0]
	for {
		used, err := decodeUint(cur, found)
		if err != nil {
			return err
		}
		if used+n > limit || used+n < used {
			return fmt.Errorf("%w: %s are used up (%d of %d; %d asked)", interfaces.ErrPaymentRequired, what, used, limit, n)
		}
		resp, err := i.sw.KVSwap(ctx, &interfaces.KVSwapRequest{Namespace: Namespace, Entries: []interfaces.KVSwapEntry{
			{Key: key, Expected: cur, ExpectAbsent: !found, Value: binary.BigEndian.AppendUint64(nil, used+n)}}})
		if err != nil {
			return fmt.Errorf("pay-blindsig: counting %s: %w", what, err)
		}
		if len(resp.Applied) != 1 {
			return fmt.Errorf("pay-blindsig: %w", interfaces.ErrMalformedReply)
		}
		if resp.Applied[0] {
			return nil
		}
		cur, found = resp.Current[0], resp.Found[0]
	}
}

func decodeUint(b []byte, found bool) (uint64, error) {
	if !found {
		return 0, nil
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("pay-blindsig: a counter of %d bytes in the KV", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// Redeem verifies a token and spends it: its spent marker and the epoch's
// redeemed count are written in one all-or-nothing swap before any packet
// is granted; a token already marked is a double spend. A token under a
// key this issuer never had, or one whose validity is over at req.Epoch,
// or whose signature does not verify, is refused as payment required and
// nothing is written.
func (i *Issuer) Redeem(ctx context.Context, req *interfaces.RedeemRequest) (*interfaces.RedeemResponse, error) {
	if len(req.Credential) > interfaces.MaxCredentialLen {
		return nil, malformed(fmt.Errorf("credential of %d bytes", len(req.Credential)))
	}
	t, err := token.ParseToken(req.Credential)
	if err != nil {
		return nil, malformed(err)
	}
	if req.Packets == 0 {
		return nil, malformed(errors.New("a redeem of 0 packets"))
	}
	from, until := i.validity(t.KeyPeriod)
	if req.Epoch < from || req.Epoch >= until {
		return nil, fmt.Errorf("%w: token under the key of period %d, valid in epochs [%d, %d), spent in epoch %d", interfaces.ErrPaymentRequired, t.KeyPeriod, from, until, req.Epoch)
	}
	sk, err := i.key(ctx, t.KeyPeriod, false)
	if err != nil {
		return nil, err
	}
	if sk == nil {
		return nil, fmt.Errorf("%w: no issuer key of period %d", interfaces.ErrPaymentRequired, t.KeyPeriod)
	}
	if err := t.Verify(&sk.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: %w", interfaces.ErrPaymentRequired, err)
	}
	id := t.SpentID()
	spent := append(binary.BigEndian.AppendUint64([]byte{'s'}, t.KeyPeriod), id[:]...)
	count := binary.BigEndian.AppendUint64([]byte{'r'}, req.Epoch)
	var cur []byte
	found := false
	for {
		n, err := decodeUint(cur, found)
		if err != nil {
			return nil, err
		}
		resp, err := i.sw.KVSwap(ctx, &interfaces.KVSwapRequest{Namespace: Namespace, All: true, Entries: []interfaces.KVSwapEntry{
			{Key: spent, ExpectAbsent: true, Value: binary.BigEndian.AppendUint64(nil, req.Epoch)},
			{Key: count, Expected: cur, ExpectAbsent: !found, Value: binary.BigEndian.AppendUint64(nil, n+1)},
		}})
		if err != nil {
			return nil, fmt.Errorf("pay-blindsig: spending a token: %w", err)
		}
		if len(resp.Applied) != 2 || len(resp.Found) != 2 || len(resp.Current) != 2 {
			return nil, fmt.Errorf("pay-blindsig: spending a token: %w", interfaces.ErrMalformedReply)
		}
		if resp.Applied[0] {
			break
		}
		if resp.Found[0] {
			return nil, fmt.Errorf("%w: token spent before", interfaces.ErrDoubleSpend)
		}
		cur, found = resp.Current[1], resp.Found[1]
	}
	i.maybePrune(req.Epoch)
	return &interfaces.RedeemResponse{Granted: min(req.Packets, uint64(i.cfg.PacketsPerToken))}, nil
}

// RecordWork adds the records to the epoch's counts, once per BatchID, in
// one all-or-nothing swap retried on conflict.
func (i *Issuer) RecordWork(ctx context.Context, req *interfaces.RecordWorkRequest) (*interfaces.RecordWorkResponse, error) {
	if err := i.work().Record(ctx, req); err != nil {
		return nil, err
	}
	return &interfaces.RecordWorkResponse{}, nil
}

// Unit is the unit of Earnings' amounts.
const Unit = "micro-token-value"

// Earnings splits the epoch's pool (tokens redeemed × TokenValue) among
// the nodes by the packets they reported forwarding and delivering; what
// integer division leaves over is not paid. Probes count as no work.
func (i *Issuer) Earnings(ctx context.Context, req *interfaces.EarningsRequest) (*interfaces.EarningsResponse, error) {
	return i.work().Earnings(ctx, req.Epoch, Unit, func(ctx context.Context) (*bigInt, error) {
		got, err := i.kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: Namespace, Keys: [][]byte{epochKey('r', req.Epoch)}})
		if err != nil {
			return nil, fmt.Errorf("pay-blindsig: reading tokens redeemed: %w", err)
		}
		if len(got.Found) != 1 {
			return nil, fmt.Errorf("pay-blindsig: %w", interfaces.ErrMalformedReply)
		}
		redeemed, err := decodeUint(got.Values[0], got.Found[0])
		if err != nil {
			return nil, err
		}
		return new(bigInt).Mul(new(bigInt).SetUint64(redeemed), new(bigInt).SetUint64(i.cfg.TokenValue)), nil
	})
}

// work is the issuer's work ledger: "w" and "b" keys in Namespace.
func (i *Issuer) work() *worklog.Log {
	return &worklog.Log{KV: i.kv, Swapper: i.sw, Namespace: Namespace, Name: "pay-blindsig"}
}

func epochKey(tag byte, epoch uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tag}, epoch)
}
