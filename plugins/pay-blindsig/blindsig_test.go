package blindsig

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os/exec"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/accountingtest"
	"github.com/sottonet/sotto/interfaces/memkv"
	"github.com/sottonet/sotto/interfaces/plugintest"
	"github.com/sottonet/sotto/plugins/pay-blindsig/token"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	keysOnce sync.Once
	keyDER   [][]byte // PKCS #8 issuer keys for periods 0..3, generated once
)

// seed stores the shared issuer keys in kv under ns (generating an RSA
// key per subtest would dominate the suite's time); the issuer finds them
// as if it had generated them.
func seed(t testing.TB, kv interfaces.KV, ns string) {
	t.Helper()
	keysOnce.Do(func() {
		for range 4 {
			sk, err := rsa.GenerateKey(rand.Reader, token.KeyBits)
			if err != nil {
				panic(err)
			}
			der, _ := x509.MarshalPKCS8PrivateKey(sk)
			keyDER = append(keyDER, der)
		}
	})
	var es []interfaces.KVEntry
	for p, der := range keyDER {
		es = append(es, interfaces.KVEntry{Key: keyKey(uint64(p)), Value: der})
	}
	if _, err := kv.KVPut(context.Background(), &interfaces.KVPutRequest{Namespace: ns, Entries: es}); err != nil {
		t.Fatal(err)
	}
}

func testConfig() Config {
	c, err := ParseConfig([]byte(`{"free_tokens_per_epoch": 1000}`))
	if err != nil {
		panic(err)
	}
	return c
}

func openOn(t testing.TB, kv interfaces.KV, cfg Config) *Issuer {
	t.Helper()
	i, err := Open(context.Background(), cfg, kv)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func client(b byte) interfaces.ClientKey { return interfaces.ClientKey{b, 1, 2, 3} }

// obtain gets n tokens for epoch as client c through a's Info and Issue,
// the way the wallet does.
func obtain(t testing.TB, a interfaces.Accounting, epoch uint64, c interfaces.ClientKey, n int, voucher []byte) ([][]byte, error) {
	t.Helper()
	ctx := context.Background()
	info, err := a.Info(ctx, &interfaces.AccountingInfoRequest{Epoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	p, err := token.ParseParams(info.Params)
	if err != nil {
		t.Fatal(err)
	}
	pend := make([]*token.Pending, n)
	req := &token.IssueRequest{KeyPeriod: p.KeyPeriod, Voucher: voucher}
	for j := range pend {
		if pend[j], err = token.Blind(rand.Reader, p); err != nil {
			t.Fatal(err)
		}
		req.Blinded = append(req.Blinded, pend[j].Blinded)
	}
	r, err := a.Issue(ctx, &interfaces.IssueRequest{Epoch: epoch, Request: req.Marshal(), Client: c})
	if err != nil {
		return nil, err
	}
	sigs, err := token.ParseIssueResponse(r.Response, n)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, n)
	for j := range out {
		tok, err := pend[j].Finalize(sigs[j])
		if err != nil {
			t.Fatal(err)
		}
		out[j] = tok.Marshal()
	}
	return out, nil
}

func one(t testing.TB, a interfaces.Accounting) []byte {
	t.Helper()
	toks, err := obtain(t, a, 1, client(9), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	return toks[0]
}

// forged is a well-formed token under period 1 with a signature nobody made.
func forged(t *testing.T) []byte {
	tok := &token.Token{KeyPeriod: 1, Signature: make([]byte, token.SigLen)}
	rand.Read(tok.Nonce[:])
	rand.Read(tok.Signature)
	tok.Signature[0] = 0 // below any modulus
	return tok.Marshal()
}

type reopeners struct{ m sync.Map }

func (r *reopeners) open(t *testing.T, start func(t *testing.T) interfaces.Accounting) interfaces.Accounting {
	a := start(t)
	r.m.Store(a, start)
	return a
}

func (r *reopeners) options() accountingtest.Options {
	return accountingtest.Options{
		Credential: func(t *testing.T, a interfaces.Accounting) []byte { return one(t, a) },
		SingleUse:  true,
		Forged:     forged,
		Reopen: func(t *testing.T, a interfaces.Accounting) interfaces.Accounting {
			start, ok := r.m.Load(a)
			if !ok {
				t.Fatal("reopening an issuer the test did not open")
			}
			return r.open(t, start.(func(*testing.T) interfaces.Accounting))
		},
	}
}

func TestConformanceInProcess(t *testing.T) {
	var r reopeners
	accountingtest.Run(t, func(t *testing.T) interfaces.Accounting {
		kv := memkv.New()
		seed(t, kv, Namespace)
		return r.open(t, func(t *testing.T) interfaces.Accounting { return openOn(t, kv, testConfig()) })
	}, r.options())
}

func TestConformanceOverGRPC(t *testing.T) {
	var r reopeners
	accountingtest.Run(t, func(t *testing.T) interfaces.Accounting {
		kv := memkv.New()
		seed(t, kv, Namespace)
		return r.open(t, func(t *testing.T) interfaces.Accounting {
			return accountingtest.OverGRPC(t, openOn(t, kv, testConfig()))
		})
	}, r.options())
}

// The plugin as its binary serves it, on a host KV reached over the broker.
func TestConformanceWithHostKV(t *testing.T) {
	var r reopeners
	accountingtest.Run(t, func(t *testing.T) interfaces.Accounting {
		base := memkv.New()
		seed(t, base, "accounting/"+Namespace)
		host := &interfaces.Host{Slot: "accounting", KV: interfaces.SlotKV(base, "accounting")}
		return r.open(t, func(t *testing.T) interfaces.Accounting {
			a, err := plugintest.Configure(t, Plugin(), []byte(`{"free_tokens_per_epoch": 1000}`), host)
			if err != nil {
				t.Fatal(err)
			}
			return a.(interfaces.Accounting)
		})
	}, r.options())
}

// entries counts what the KV holds in the plugin's namespace.
func entries(t testing.TB, kv interfaces.KV, ns string) int {
	t.Helper()
	n := 0
	var after []byte
	for {
		l, err := kv.KVList(context.Background(), &interfaces.KVListRequest{Namespace: ns, After: after})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Keys) == 0 {
			return n
		}
		n += len(l.Keys)
		after = l.Keys[len(l.Keys)-1]
	}
}

func redeem(a interfaces.Accounting, epoch uint64, cred []byte) (*interfaces.RedeemResponse, error) {
	return a.Redeem(context.Background(), &interfaces.RedeemRequest{Epoch: epoch, Gateway: interfaces.NodeID{1}, Credential: cred, Packets: 1000, Client: client(1)})
}

// Each failure mode is refused with its error, grants nothing and stores
// nothing.
func TestRefusals(t *testing.T) {
	kv := memkv.New()
	seed(t, kv, Namespace)
	a := openOn(t, kv, testConfig())
	good := one(t, a)
	spent := one(t, a)
	if r, err := redeem(a, 1, spent); err != nil || r.Granted != DefaultPacketsPerToken {
		t.Fatalf("first redeem: %+v, %v; want %d packets", r, err, DefaultPacketsPerToken)
	}
	underKey := func(period uint64) []byte {
		tok, _ := token.ParseToken(good)
		tok.KeyPeriod = period
		return tok.Marshal()
	}
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-1] ^= 1
	nonce := append([]byte(nil), good...)
	nonce[20] ^= 1
	for _, tc := range []struct {
		name  string
		epoch uint64
		cred  []byte
		want  error
	}{
		{"a token spent before is a double spend", 1, spent, interfaces.ErrDoubleSpend},
		{"a signature with a bit flipped is forged", 1, flipped, interfaces.ErrPaymentRequired},
		{"a token whose nonce was changed is forged", 1, nonce, interfaces.ErrPaymentRequired},
		{"a random signature under a real key is forged", 1, forged(t), interfaces.ErrPaymentRequired},
		{"a token moved to another existing key is forged", 2, underKey(2), interfaces.ErrPaymentRequired},
		{"a token under a key the issuer never had", 50, underKey(50), interfaces.ErrPaymentRequired},
		{"a token under an expired key (past its grace)", 1 + DefaultKeyEpochs + DefaultGraceEpochs, good, interfaces.ErrPaymentRequired},
		{"a token spent before its key's epochs", 0, good, interfaces.ErrPaymentRequired},
		{"empty bytes are malformed", 1, nil, interfaces.ErrInvalidArgument},
		{"a token cut short is malformed", 1, good[:len(good)-1], interfaces.ErrInvalidArgument},
		{"a token with a byte more is malformed", 1, append(append([]byte(nil), good...), 0), interfaces.ErrInvalidArgument},
		{"a token of an unknown version is malformed", 1, append([]byte{9}, good[1:]...), interfaces.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := entries(t, kv, Namespace)
			r, err := redeem(a, tc.epoch, tc.cred)
			if !errors.Is(err, tc.want) || r != nil {
				t.Fatalf("Redeem: %+v, %v; want nothing and %v", r, err, tc.want)
			}
			if tc.want != interfaces.ErrDoubleSpend && errors.Is(err, interfaces.ErrDoubleSpend) {
				t.Fatalf("refused as a double spend: %v", err)
			}
			if after := entries(t, kv, Namespace); after != before {
				t.Fatalf("a refused redeem changed the KV: %d entries before, %d after", before, after)
			}
		})
	}
	// Within its grace period the token still pays, once.
	if r, err := redeem(a, DefaultKeyEpochs+DefaultGraceEpochs, good); err != nil || r.Granted == 0 {
		t.Fatalf("a token in its key's grace period: %+v, %v", r, err)
	}
}

func TestDoubleSpendSequentialAndConcurrent(t *testing.T) {
	kv := memkv.New()
	seed(t, kv, Namespace)
	a := accountingtest.OverGRPC(t, openOn(t, kv, testConfig()))
	tok := one(t, a)
	if _, err := redeem(a, 1, tok); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := redeem(a, 1, tok); !errors.Is(err, interfaces.ErrDoubleSpend) {
			t.Fatalf("sequential second redeem: err = %v, want ErrDoubleSpend", err)
		}
	}
	// Two issuers on one KV (two plugin processes): 16 concurrent redeems
	// of one token, one wins.
	b := openOn(t, kv, testConfig())
	tok = one(t, a)
	var (
		wg          sync.WaitGroup
		mu          sync.Mutex
		won, double int
		granted     uint64
	)
	for j := range 16 {
		x := a
		if j%2 == 1 {
			x = b
		}
		wg.Go(func() {
			r, err := redeem(x, 1, tok)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
				granted += r.Granted
			case errors.Is(err, interfaces.ErrDoubleSpend):
				double++
			default:
				t.Errorf("concurrent redeem: %v", err)
			}
		})
	}
	wg.Wait()
	if won != 1 || double != 15 || granted != DefaultPacketsPerToken {
		t.Fatalf("16 concurrent redeems of one token: %d won (%d packets), %d double spends; want 1 (%d) and 15", won, granted, double, DefaultPacketsPerToken)
	}
}

func TestFreeQuotaPerClientAndEpoch(t *testing.T) {
	kv := memkv.New()
	seed(t, kv, Namespace)
	cfg, _ := ParseConfig([]byte(`{"free_tokens_per_epoch": 3}`))
	a := openOn(t, kv, cfg)
	if _, err := obtain(t, a, 1, client(1), 2, nil); err != nil {
		t.Fatal(err)
	}
	before := entries(t, kv, Namespace)
	if _, err := obtain(t, a, 1, client(1), 2, nil); !errors.Is(err, interfaces.ErrPaymentRequired) {
		t.Fatalf("issuing past the quota: err = %v, want ErrPaymentRequired", err)
	}
	if entries(t, kv, Namespace) != before {
		t.Fatal("a refused issue changed the KV")
	}
	if _, err := obtain(t, a, 1, client(1), 1, nil); err != nil {
		t.Fatalf("the last token of the quota: %v", err)
	}
	if _, err := obtain(t, a, 1, client(2), 3, nil); err != nil {
		t.Fatalf("another client's quota: %v", err)
	}
	if _, err := obtain(t, a, 2, client(1), 3, nil); err != nil {
		t.Fatalf("the next epoch's quota: %v", err)
	}
	if _, err := obtain(t, a, 1, interfaces.ClientKey{}, 1, nil); !errors.Is(err, interfaces.ErrPaymentRequired) {
		t.Fatalf("issuing for no client: err = %v, want ErrPaymentRequired", err)
	}
}

func TestVoucherPolicy(t *testing.T) {
	pub, op, _ := ed25519.GenerateKey(rand.Reader)
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	raw, _ := json.Marshal(map[string]any{"policy": "voucher", "voucher_keys": []string{hex.EncodeToString(pub)}})
	cfg, err := ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	kv := memkv.New()
	seed(t, kv, Namespace)
	a := openOn(t, kv, cfg)
	v := token.SignVoucher(op, [16]byte{1}, 3, 10)
	toks, err := obtain(t, a, 1, client(1), 2, v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := redeem(a, 1, toks[0]); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		epoch   uint64
		n       int
		voucher []byte
		want    error
	}{
		{"a voucher used past its tokens (by anyone)", 1, 2, v, interfaces.ErrPaymentRequired},
		{"no voucher", 1, 1, nil, interfaces.ErrPaymentRequired},
		{"a voucher signed by a stranger", 1, 1, token.SignVoucher(stranger, [16]byte{2}, 3, 10), interfaces.ErrPaymentRequired},
		{"an expired voucher", 1, 1, token.SignVoucher(op, [16]byte{3}, 3, 0), interfaces.ErrPaymentRequired},
		{"a voucher cut short", 1, 1, v[:len(v)-1], interfaces.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := obtain(t, a, tc.epoch, client(2), tc.n, tc.voucher); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := obtain(t, a, 1, client(3), 1, v); err != nil {
		t.Fatalf("the voucher's last token: %v", err)
	}
}

func TestConfigRefusals(t *testing.T) {
	for _, raw := range []string{`{"policy":"gold"}`, `{"policy":"voucher"}`, `{"voucher_keys":["zz"]}`, `{"max_batch":200}`, `{"unknown":1}`, `{} {"policy":"gold"}`} {
		if _, err := ParseConfig([]byte(raw)); !errors.Is(err, interfaces.ErrInvalidArgument) {
			t.Errorf("config %s: err = %v, want ErrInvalidArgument", raw, err)
		}
	}
}

// Issuance requests the issuer must refuse, and nothing counted for them.
func TestIssueRefusesMalformedRequests(t *testing.T) {
	kv := memkv.New()
	seed(t, kv, Namespace)
	a := openOn(t, kv, testConfig())
	big := make([]byte, token.SigLen)
	for j := range big {
		big[j] = 0xff
	}
	for _, tc := range []struct {
		name string
		req  []byte
		want error
	}{
		{"empty", nil, interfaces.ErrInvalidArgument},
		{"no blinded message", (&token.IssueRequest{KeyPeriod: 1}).Marshal(), interfaces.ErrInvalidArgument},
		{"a blinded message not below the modulus", (&token.IssueRequest{KeyPeriod: 1, Blinded: [][]byte{big}}).Marshal(), interfaces.ErrInvalidArgument},
		{"more than max_batch", (&token.IssueRequest{KeyPeriod: 1, Blinded: make([][]byte, DefaultMaxBatch+1)}).Marshal(), interfaces.ErrInvalidArgument},
		{"another period's key", (&token.IssueRequest{KeyPeriod: 2, Blinded: [][]byte{make([]byte, token.SigLen)}}).Marshal(), interfaces.ErrPaymentRequired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := entries(t, kv, Namespace)
			if _, err := a.Issue(context.Background(), &interfaces.IssueRequest{Epoch: 1, Request: tc.req, Client: client(1)}); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if entries(t, kv, Namespace) != before {
				t.Fatal("a refused issue changed the KV")
			}
		})
	}
}

// A key the issuer generates itself is stored, and another issuer on the
// same KV (a restarted process) signs and verifies with it.
func TestGeneratedKeysSurviveARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("generates an RSA-2048 key")
	}
	kv := memkv.New()
	a := openOn(t, kv, testConfig())
	tok := one(t, a)
	b := openOn(t, kv, testConfig())
	if _, err := redeem(b, 1, tok); err != nil {
		t.Fatalf("a token issued before a restart: %v", err)
	}
}

// The plugin's real binary, SIGKILLed right after a token was spent and
// started again on the same host KV, refuses the token as a double spend
// and still accepts the tokens it issued but were not spent.
func TestSpentTokenStaysSpentAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the plugin binary")
	}
	bin := plugintest.Build(t, "./cmd/pay-blindsig")
	base := memkv.New()
	seed(t, base, "accounting/"+Namespace)
	host := &interfaces.Host{Slot: "accounting", KV: interfaces.SlotKV(base, "accounting")}
	start := func() (interfaces.Accounting, *exec.Cmd) {
		cmd := exec.Command(bin)
		return plugintest.ProcessWithHost(t, interfaces.AccountingKind, cmd, nil, host).(interfaces.Accounting), cmd
	}
	a, cmd := start()
	toks, err := obtain(t, a, 1, client(1), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := redeem(a, 1, toks[0]); err != nil {
		t.Fatal(err)
	}
	plugintest.Kill(t, cmd) // SIGKILL: no clean shutdown
	if _, err := redeem(a, 1, toks[1]); !errors.Is(err, interfaces.ErrUnavailable) {
		t.Fatalf("redeem at a killed plugin: err = %v, want ErrUnavailable", err)
	}
	b, _ := start()
	if r, err := redeem(b, 1, toks[0]); !errors.Is(err, interfaces.ErrDoubleSpend) {
		t.Fatalf("the token spent before SIGKILL: %+v, %v; want ErrDoubleSpend", r, err)
	}
	if r, err := redeem(b, 1, toks[1]); err != nil || r.Granted == 0 {
		t.Fatalf("a token issued before SIGKILL and not spent: %+v, %v", r, err)
	}
}

func TestEarningsSplitTheEpochsRedeemedTokensByWork(t *testing.T) {
	kv := memkv.New()
	seed(t, kv, Namespace)
	a := openOn(t, kv, testConfig())
	for range 3 {
		if _, err := redeem(a, 1, one(t, a)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if _, err := a.RecordWork(ctx, &interfaces.RecordWorkRequest{Epoch: 1, Records: []interfaces.WorkRecord{
		{Node: interfaces.NodeID{1}, Kind: interfaces.WorkForwarded, Packets: 100},
		{Node: interfaces.NodeID{2}, Kind: interfaces.WorkDelivered, Packets: 200},
		{Node: interfaces.NodeID{3}, Kind: interfaces.WorkProbed, Packets: 50},
	}}); err != nil {
		t.Fatal(err)
	}
	e, err := a.Earnings(ctx, &interfaces.EarningsRequest{Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{1000, 2000, 0} // 3 tokens × 1000, split 1:2, probes earn nothing
	if len(e.Nodes) != 3 {
		t.Fatalf("earnings %+v", e)
	}
	for j, n := range e.Nodes {
		if n.Amount != want[j] {
			t.Errorf("node %d earned %d, want %d", j+1, n.Amount, want[j])
		}
	}
}
