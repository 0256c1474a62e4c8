package channels

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/accountingtest"
	"github.com/sottonet/sotto/interfaces/memkv"
	"github.com/sottonet/sotto/interfaces/plugintest"
	"github.com/sottonet/sotto/plugins/pay-channels/voucher"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testConfig() Config {
	c, err := ParseConfig([]byte(`{"price_per_packet": 10, "packets_per_voucher": 100, "max_deposit": 100000, "max_channel_epochs": 10, "dispute_epochs": 2}`))
	if err != nil {
		panic(err)
	}
	return c
}

func openOn(t testing.TB, kv interfaces.KV) (*Provider, *KVLedger) {
	t.Helper()
	p, l, err := OpenWithKVLedger(context.Background(), testConfig(), kv)
	if err != nil {
		t.Fatal(err)
	}
	return p, l
}

// payer is a client's channel as a test drives it.
type payer struct {
	key   ed25519.PrivateKey
	id    [voucher.IDLen]byte
	nonce uint64
	sum   uint64
}

func newPayer(t testing.TB) *payer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &payer{key: k}
}

func (c *payer) pub() (k [voucher.KeyLen]byte) {
	copy(k[:], c.key.Public().(ed25519.PublicKey))
	return k
}

// open opens c's channel to the provider a publishes, through Issue.
func (c *payer) open(t testing.TB, a interfaces.Accounting, epoch, deposit uint64) error {
	t.Helper()
	info, err := a.Info(context.Background(), &interfaces.AccountingInfoRequest{Epoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	pp, err := voucher.ParseParams(info.Params)
	if err != nil {
		t.Fatal(err)
	}
	var seq [8]byte
	rand.Read(seq[:])
	o := voucher.Open{Payer: c.pub(), Payee: pp.Payee, Seq: binary.BigEndian.Uint64(seq[:]), Deposit: deposit, Expiry: epoch + uint64(pp.MaxEpochs)}
	o.Sign(c.key)
	r, err := a.Issue(context.Background(), &interfaces.IssueRequest{Epoch: epoch, Request: o.Marshal(), Client: interfaces.ClientKey(c.pub())})
	if err != nil {
		return err
	}
	st, err := voucher.ParseReceipt(r.Response, pp.Ledger)
	if err != nil {
		t.Fatal(err)
	}
	c.id = st.ID
	return nil
}

// voucher signs the next voucher, paying amount more.
func (c *payer) next(amount uint64) *voucher.Voucher {
	c.nonce++
	c.sum += amount
	v := &voucher.Voucher{Channel: c.id, Nonce: c.nonce, Amount: c.sum}
	v.Sign(c.key)
	return v
}

func redeem(a interfaces.Accounting, epoch uint64, cred []byte, packets uint64) (*interfaces.RedeemResponse, error) {
	return a.Redeem(context.Background(), &interfaces.RedeemRequest{Epoch: epoch, Gateway: interfaces.NodeID{1}, Credential: cred, Packets: packets})
}

// fresh opens a channel and returns its first voucher, for 100 packets.
func fresh(t *testing.T, a interfaces.Accounting) []byte {
	c := newPayer(t)
	if err := c.open(t, a, 1, 10000); err != nil {
		t.Fatal(err)
	}
	return c.next(1000).Marshal()
}

// forgedVoucher is well formed, on no channel, signed by nobody's key.
func forgedVoucher(t *testing.T) []byte {
	v := voucher.Voucher{Nonce: 1, Amount: 1000}
	rand.Read(v.Channel[:])
	rand.Read(v.Signature[:])
	return v.Marshal()
}

type reopeners struct{ m sync.Map }

func (r *reopeners) open(t *testing.T, start func(t *testing.T) interfaces.Accounting) interfaces.Accounting {
	a := start(t)
	r.m.Store(a, start)
	return a
}

func (r *reopeners) options() accountingtest.Options {
	return accountingtest.Options{
		Credential: fresh,
		SingleUse:  true, // a voucher taken once is stale
		Forged:     forgedVoucher,
		Reopen: func(t *testing.T, a interfaces.Accounting) interfaces.Accounting {
			start, ok := r.m.Load(a)
			if !ok {
				t.Fatal("reopening a provider the test did not open")
			}
			return r.open(t, start.(func(*testing.T) interfaces.Accounting))
		},
	}
}

func TestConformanceInProcess(t *testing.T) {
	var r reopeners
	accountingtest.Run(t, func(t *testing.T) interfaces.Accounting {
		kv := memkv.New()
		return r.open(t, func(t *testing.T) interfaces.Accounting { p, _ := openOn(t, kv); return p })
	}, r.options())
}

func TestConformanceOverGRPC(t *testing.T) {
	var r reopeners
	accountingtest.Run(t, func(t *testing.T) interfaces.Accounting {
		kv := memkv.New()
		return r.open(t, func(t *testing.T) interfaces.Accounting {
			p, _ := openOn(t, kv)
			return accountingtest.OverGRPC(t, p)
		})
	}, r.options())
}

// The plugin as its binary serves it, on a host KV reached over the broker.
func TestConformanceWithHostKV(t *testing.T) {
	var r reopeners
	accountingtest.Run(t, func(t *testing.T) interfaces.Accounting {
		host := &interfaces.Host{Slot: "accounting", KV: interfaces.SlotKV(memkv.New(), "accounting")}
		return r.open(t, func(t *testing.T) interfaces.Accounting {
			a, err := plugintest.Configure(t, Plugin(), nil, host)
			if err != nil {
				t.Fatal(err)
			}
			return a.(interfaces.Accounting)
		})
	}, r.options())
}

// snapshot is every key and value of the plugin's and the ledger's
// namespaces.
func snapshot(t testing.TB, kv interfaces.KV) string {
	t.Helper()
	var b bytes.Buffer
	for _, ns := range []string{Namespace} {
		var after []byte
		for {
			l, err := kv.KVList(context.Background(), &interfaces.KVListRequest{Namespace: ns, After: after})
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Keys) == 0 {
				break
			}
			g, err := kv.KVGet(context.Background(), &interfaces.KVGetRequest{Namespace: ns, Keys: l.Keys})
			if err != nil {
				t.Fatal(err)
			}
			for i, k := range l.Keys {
				fmt.Fprintf(&b, "%s %x=%x\n", ns, k, g.Values[i])
			}
			after = l.Keys[len(l.Keys)-1]
		}
	}
	return b.String()
}

// Each refusal of the issue's list is refused with its error, grants
// nothing and changes nothing the provider or the ledger stores.
func TestRefusalsChangeNothing(t *testing.T) {
	kv := memkv.New()
	p, l := openOn(t, kv)
	ctx := context.Background()
	c := newPayer(t)
	if err := c.open(t, p, 1, 5000); err != nil {
		t.Fatal(err)
	}
	v1 := c.next(1000)
	v2 := c.next(1000)
	if _, err := redeem(p, 1, v2.Marshal(), 100); err != nil {
		t.Fatal(err)
	}
	// Forgeries: a bit flipped, the right fields signed by another key.
	flipped := v2.Marshal()
	flipped[len(flipped)-1] ^= 1
	mallory := newPayer(t)
	mallory.id, mallory.nonce, mallory.sum = c.id, c.nonce, c.sum
	forged := mallory.next(1000)
	overDeposit := *c
	big := overDeposit.next(5000) // 7000 of 5000
	under := *c
	cheap := under.next(5) // pays for half a packet
	// Another provider's channel, and one on no ledger entry.
	other, _ := openOn(t, memkv.New())
	oc := newPayer(t)
	if err := oc.open(t, other, 1, 5000); err != nil {
		t.Fatal(err)
	}
	elsewhere := oc.next(1000)
	nowhere := newPayer(t)
	rand.Read(nowhere.id[:])
	unknown := nowhere.next(1000)
	// A closed channel: opened, paid once, closed by its payer.
	cc := newPayer(t)
	if err := cc.open(t, p, 1, 5000); err != nil {
		t.Fatal(err)
	}
	if _, err := redeem(p, 1, cc.next(1000).Marshal(), 100); err != nil {
		t.Fatal(err)
	}
	cl := voucher.Close{Channel: cc.id}
	cl.Sign(cc.key)
	if _, err := l.Close(ctx, &cl, 2); err != nil {
		t.Fatal(err)
	}
	afterClose := cc.next(1000)
	sameNonce := *c
	sameNonce.nonce--
	equalNonce := sameNonce.next(3000) // nonce 2 again, more money
	for _, tc := range []struct {
		name  string
		epoch uint64
		cred  []byte
		want  error
	}{
		{"a replayed voucher (equal) is stale", 1, v2.Marshal(), interfaces.ErrDoubleSpend},
		{"an older voucher is stale", 1, v1.Marshal(), interfaces.ErrDoubleSpend},
		{"a voucher reusing the last nonce is stale", 1, equalNonce.Marshal(), interfaces.ErrDoubleSpend},
		{"a signature with a bit flipped is forged", 1, flipped, interfaces.ErrPaymentRequired},
		{"a voucher signed by another key is forged", 1, forged.Marshal(), interfaces.ErrPaymentRequired},
		{"a voucher over the deposit is refused", 1, big.Marshal(), interfaces.ErrPaymentRequired},
		{"a voucher paying for no packet is refused", 1, cheap.Marshal(), interfaces.ErrPaymentRequired},
		{"a voucher on another provider's channel is refused", 1, elsewhere.Marshal(), interfaces.ErrPaymentRequired},
		{"a voucher on no channel is refused", 1, unknown.Marshal(), interfaces.ErrPaymentRequired},
		{"a voucher on a closed channel is refused", 2, afterClose.Marshal(), interfaces.ErrPaymentRequired},
		{"a voucher on an expired channel is refused", 11, c.next(1000).Marshal(), interfaces.ErrPaymentRequired},
		{"empty bytes are malformed", 1, nil, interfaces.ErrInvalidArgument},
		{"a voucher cut short is malformed", 1, v2.Marshal()[:voucher.VoucherLen-1], interfaces.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, kv)
			r, err := redeem(p, tc.epoch, tc.cred, 100)
			if !errors.Is(err, tc.want) {
				t.Errorf("Redeem: %+v, %v; want %v", r, err, tc.want)
			}
			if r != nil && r.Granted != 0 {
				t.Errorf("granted %d", r.Granted)
			}
			if after := snapshot(t, kv); after != before {
				t.Errorf("a refused voucher changed the store:\nbefore\n%s\nafter\n%s", before, after)
			}
		})
	}
	// The channel still pays with its next voucher.
	c2 := *c
	c2.nonce, c2.sum = 2, 2000
	if r, err := redeem(p, 1, c2.next(1000).Marshal(), 100); err != nil || r.Granted != 100 {
		t.Fatalf("the next good voucher: %+v, %v", r, err)
	}
}

func TestIssueRefusals(t *testing.T) {
	kv := memkv.New()
	p, _ := openOn(t, kv)
	other, _ := openOn(t, memkv.New())
	c := newPayer(t)
	if err := c.open(t, p, 1, 5000); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		open func() error
		want error
	}{
		{"a second channel of one pair while the first is open", func() error { return c.open(t, p, 1, 5000) }, interfaces.ErrPaymentRequired},
		{"a second channel of one client under another payer key", func() error {
			o := voucher.Open{Payer: newPayer(t).pub(), Payee: p.Payee(), Seq: 5, Deposit: 10, Expiry: 5}
			d := newPayer(t)
			o.Payer = d.pub()
			o.Sign(d.key)
			_, err := p.Issue(context.Background(), &interfaces.IssueRequest{Epoch: 1, Request: o.Marshal(), Client: interfaces.ClientKey(c.pub())})
			return err
		}, interfaces.ErrPaymentRequired},
		{"a channel for no authenticated client", func() error {
			d := newPayer(t)
			o := voucher.Open{Payer: d.pub(), Payee: p.Payee(), Seq: 5, Deposit: 10, Expiry: 5}
			o.Sign(d.key)
			_, err := p.Issue(context.Background(), &interfaces.IssueRequest{Epoch: 1, Request: o.Marshal()})
			return err
		}, interfaces.ErrPaymentRequired},
		{"a deposit over the maximum", func() error { return newPayer(t).open(t, p, 1, 100001) }, interfaces.ErrPaymentRequired},
		{"a zero deposit", func() error { return newPayer(t).open(t, p, 1, 0) }, interfaces.ErrPaymentRequired},
		{"a channel to another provider", func() error {
			info, _ := other.Info(context.Background(), &interfaces.AccountingInfoRequest{})
			pp, _ := voucher.ParseParams(info.Params)
			o := voucher.Open{Payer: c.pub(), Payee: pp.Payee, Deposit: 10, Expiry: 5}
			o.Sign(c.key)
			_, err := p.Issue(context.Background(), &interfaces.IssueRequest{Epoch: 1, Request: o.Marshal()})
			return err
		}, interfaces.ErrPaymentRequired},
		{"an open signed by another key", func() error {
			o := voucher.Open{Payer: c.pub(), Payee: p.Payee(), Seq: 9, Deposit: 10, Expiry: 5}
			o.Sign(newPayer(t).key)
			_, err := p.Issue(context.Background(), &interfaces.IssueRequest{Epoch: 1, Request: o.Marshal()})
			return err
		}, interfaces.ErrPaymentRequired},
		{"a close signed by another key", func() error {
			cl := voucher.Close{Channel: c.id}
			cl.Sign(newPayer(t).key)
			_, err := p.Issue(context.Background(), &interfaces.IssueRequest{Epoch: 1, Request: cl.Marshal()})
			return err
		}, interfaces.ErrPaymentRequired},
		{"a settle inside the dispute window", func() error {
			s := voucher.Settle{Channel: c.id}
			_, err := p.Issue(context.Background(), &interfaces.IssueRequest{Epoch: 3, Request: s.Marshal()})
			return err
		}, interfaces.ErrPaymentRequired},
		{"garbage", func() error {
			_, err := p.Issue(context.Background(), &interfaces.IssueRequest{Epoch: 1, Request: []byte{1, 9, 9}})
			return err
		}, interfaces.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, kv)
			if err := tc.open(); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if after := snapshot(t, kv); after != before {
				t.Error("a refused request changed the store")
			}
		})
	}
}

// Concurrent Redeems of different vouchers on one channel never grant
// more than the newest stored voucher pays for, and two vouchers with one
// nonce never both pass.
func TestConcurrentRedeemsOfDifferentVouchers(t *testing.T) {
	kv := memkv.New()
	p, _ := openOn(t, kv)
	c := newPayer(t)
	if err := c.open(t, p, 1, 100000); err != nil {
		t.Fatal(err)
	}
	// Two vouchers of nonce 1 (a payer signing twice), then 16 in a row.
	a := &voucher.Voucher{Channel: c.id, Nonce: 1, Amount: 1000}
	a.Sign(c.key)
	b := &voucher.Voucher{Channel: c.id, Nonce: 1, Amount: 2000}
	b.Sign(c.key)
	c.nonce, c.sum = 1, 2000
	creds := [][]byte{a.Marshal(), b.Marshal()}
	for range 16 {
		creds = append(creds, c.next(1000).Marshal())
	}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		granted   uint64
		nonceOnes int
	)
	for i, cred := range creds {
		wg.Go(func() {
			r, err := redeem(p, 1, cred, 1000)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				granted += r.Granted
				if i < 2 {
					nonceOnes++
				}
			case !errors.Is(err, interfaces.ErrDoubleSpend):
				t.Errorf("Redeem: %v", err)
			}
		})
	}
	wg.Wait()
	if nonceOnes > 1 {
		t.Error("two vouchers of one nonce both passed")
	}
	g, err := kv.KVGet(context.Background(), &interfaces.KVGetRequest{Namespace: Namespace, Keys: [][]byte{voucherKey(c.id), epochKey('r', 1)}})
	if err != nil {
		t.Fatal(err)
	}
	last, err := voucher.ParseVoucher(g.Values[0])
	if err != nil {
		t.Fatal(err)
	}
	paid, _ := decodeUint(g.Values[1], g.Found[1])
	if granted == 0 || granted*10 > last.Amount || paid != last.Amount {
		t.Errorf("granted %d packets (%d at 10), the epoch counts %d paid, the newest voucher holds %d", granted, granted*10, paid, last.Amount)
	}
	if last.Nonce != 17 {
		t.Errorf("the newest voucher stored has nonce %d, want 17", last.Nonce)
	}
}

// The plugin's real binary, SIGKILLed right after it took a voucher and
// started again on the same host KV, still holds that voucher: sent again
// it is stale, and the next one pays only the difference.
func TestLatestVoucherSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the plugin binary")
	}
	bin := plugintest.Build(t, "./cmd/pay-channels")
	host := &interfaces.Host{Slot: "accounting", KV: interfaces.SlotKV(memkv.New(), "accounting")}
	start := func() (interfaces.Accounting, *exec.Cmd) {
		cmd := exec.Command(bin)
		return plugintest.ProcessWithHost(t, interfaces.AccountingKind, cmd, nil, host).(interfaces.Accounting), cmd
	}
	a, cmd := start()
	c := newPayer(t)
	if err := c.open(t, a, 1, 100000); err != nil {
		t.Fatal(err)
	}
	v1 := c.next(1000)
	if _, err := redeem(a, 1, v1.Marshal(), 100); err != nil {
		t.Fatal(err)
	}
	plugintest.Kill(t, cmd) // SIGKILL: no clean shutdown
	b, _ := start()
	if r, err := redeem(b, 1, v1.Marshal(), 100); !errors.Is(err, interfaces.ErrDoubleSpend) {
		t.Fatalf("the voucher taken before SIGKILL: %+v, %v; want ErrDoubleSpend", r, err)
	}
	if r, err := redeem(b, 1, c.next(500).Marshal(), 100); err != nil || r.Granted != 50 {
		t.Fatalf("the next voucher paying 500 more: %+v, %v; want 50 packets", r, err)
	}
}

func balance(t *testing.T, l *KVLedger, k [voucher.KeyLen]byte) uint64 {
	t.Helper()
	b, err := l.Balance(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The provider claims each epoch's vouchers on the ledger; the client
// closes with its newest voucher and recovers the rest after the dispute
// window; the provider can neither claim with an older voucher nor settle
// early, and an older voucher the client closes with loses to the newer
// one the provider claims.
func TestSettlementAndDispute(t *testing.T) {
	ctx := context.Background()
	p, l := openOn(t, memkv.New())
	c := newPayer(t)
	if err := c.open(t, p, 1, 10000); err != nil {
		t.Fatal(err)
	}
	var vs []*voucher.Voucher
	for range 3 {
		v := c.next(1000)
		vs = append(vs, v)
		if _, err := redeem(p, 1, v.Marshal(), 100); err != nil {
			t.Fatal(err)
		}
	}
	// Epoch 1's work report settles epoch 1: the ledger holds 3000.
	if _, err := p.RecordWork(ctx, &interfaces.RecordWorkRequest{Epoch: 2}); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.Channel(ctx, c.id); st.Amount != 3000 || st.Nonce != 3 {
		t.Fatalf("after the epoch's claim the ledger holds %d at nonce %d, want 3000 at 3", st.Amount, st.Nonce)
	}
	if n, err := p.Settle(ctx, 2); err != nil || n != 0 {
		t.Fatalf("settling again claims %d, %v; want nothing", n, err)
	}
	// Two more in epoch 2; the client closes with the newest (5000).
	for range 2 {
		v := c.next(1000)
		vs = append(vs, v)
		if _, err := redeem(p, 2, v.Marshal(), 100); err != nil {
			t.Fatal(err)
		}
	}
	cl := voucher.Close{Channel: c.id, Voucher: vs[4]}
	cl.Sign(c.key)
	if _, err := p.Issue(ctx, &interfaces.IssueRequest{Epoch: 3, Request: cl.Marshal()}); err != nil {
		t.Fatal(err)
	}
	// A provider claiming with an older voucher loses.
	if _, err := l.Claim(ctx, vs[3], 3); !errors.Is(err, ErrStale) {
		t.Errorf("a claim with an older voucher after the client's newer one: %v, want ErrStale", err)
	}
	if _, err := l.Settle(ctx, c.id, 4); !errors.Is(err, interfaces.ErrPaymentRequired) {
		t.Errorf("settling inside the dispute window: %v", err)
	}
	s := voucher.Settle{Channel: c.id}
	r, err := p.Issue(ctx, &interfaces.IssueRequest{Epoch: 5, Request: s.Marshal()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := voucher.ParseReceipt(r.Response, l.Key())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Settled || st.Amount != 5000 || st.Refund() != 5000 {
		t.Errorf("settled %+v; want 5000 paid and 5000 refunded", st)
	}
	if got := balance(t, l, p.Payee()); got != 5000 {
		t.Errorf("the provider was paid %d, want 5000", got)
	}
	if got := balance(t, l, c.pub()); got != 5000 {
		t.Errorf("the client recovered %d, want 5000", got)
	}
	if _, err := l.Settle(ctx, c.id, 6); !errors.Is(err, interfaces.ErrPaymentRequired) {
		t.Errorf("settling twice: %v", err)
	}
	if _, err := p.Settle(ctx, 6); err != nil {
		t.Errorf("the provider's settlement after the payout: %v", err)
	}
	if got := balance(t, l, p.Payee()); got != 5000 {
		t.Errorf("after settling twice the provider has %d, want 5000", got)
	}

	// The other way round: the client closes with an old voucher; the
	// provider's claim of its newest, inside the window, wins.
	d := newPayer(t)
	if err := d.open(t, p, 6, 10000); err != nil {
		t.Fatal(err)
	}
	old := d.next(1000)
	if _, err := redeem(p, 6, old.Marshal(), 100); err != nil {
		t.Fatal(err)
	}
	if _, err := redeem(p, 6, d.next(1000).Marshal(), 100); err != nil {
		t.Fatal(err)
	}
	cl = voucher.Close{Channel: d.id, Voucher: old}
	cl.Sign(d.key)
	if _, err := l.Close(ctx, &cl, 6); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Settle(ctx, 7); err != nil { // claims 2000 inside the window
		t.Fatal(err)
	}
	if _, err := p.Settle(ctx, 8); err != nil { // window over: pays out
		t.Fatal(err)
	}
	st2, _ := l.Channel(ctx, d.id)
	if !st2.Settled || st2.Amount != 2000 {
		t.Errorf("the channel closed on an old voucher settled at %d (settled %v), want the provider's newer 2000", st2.Amount, st2.Settled)
	}
	if got := balance(t, l, p.Payee()); got != 7000 {
		t.Errorf("the provider was paid %d in all, want 7000", got)
	}
	// Settled channels are forgotten by the provider; their vouchers stay
	// refused (the ledger says settled).
	g, err := p.kv.KVList(ctx, &interfaces.KVListRequest{Namespace: Namespace, Prefix: []byte{'v'}})
	if err != nil || len(g.Keys) != 0 {
		t.Errorf("the provider still holds %d vouchers of settled channels (%v)", len(g.Keys), err)
	}
	if _, err := redeem(p, 8, d.next(1000).Marshal(), 100); !errors.Is(err, interfaces.ErrPaymentRequired) {
		t.Errorf("a voucher on a settled channel: %v", err)
	}
	n, err := l.VerifyLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The first: open, the epoch's claim, close, settle; the second the same.
	if n != 8 {
		t.Errorf("the ledger log holds %d entries, want 8", n)
	}
}

// The ledger's log is append-only and signed: an entry changed in the KV
// is found.
func TestLedgerLogTamperingIsFound(t *testing.T) {
	kv := memkv.New()
	p, l := openOn(t, kv)
	c := newPayer(t)
	if err := c.open(t, p, 1, 5000); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Claim(context.Background(), c.next(1000), 1); err != nil {
		t.Fatal(err)
	}
	if n, err := l.VerifyLog(context.Background()); err != nil || n != 2 {
		t.Fatalf("VerifyLog: %d, %v", n, err)
	}
	k := binary.BigEndian.AppendUint64([]byte("Le"), 0)
	g, _ := kv.KVGet(context.Background(), &interfaces.KVGetRequest{Namespace: LedgerNamespace, Keys: [][]byte{k}})
	e := g.Values[0]
	e[60] ^= 1
	kv.KVPut(context.Background(), &interfaces.KVPutRequest{Namespace: LedgerNamespace, Entries: []interfaces.KVEntry{{Key: k, Value: e}}})
	if _, err := l.VerifyLog(context.Background()); err == nil {
		t.Error("a changed entry verified")
	}
}

func TestEarningsSplitTheEpochsPaymentsByWork(t *testing.T) {
	p, _ := openOn(t, memkv.New())
	c := newPayer(t)
	if err := c.open(t, p, 1, 10000); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := redeem(p, 1, c.next(1000).Marshal(), 100); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if _, err := p.RecordWork(ctx, &interfaces.RecordWorkRequest{Epoch: 1, Records: []interfaces.WorkRecord{
		{Node: interfaces.NodeID{1}, Kind: interfaces.WorkForwarded, Packets: 100},
		{Node: interfaces.NodeID{2}, Kind: interfaces.WorkDelivered, Packets: 200},
		{Node: interfaces.NodeID{3}, Kind: interfaces.WorkProbed, Packets: 50},
	}}); err != nil {
		t.Fatal(err)
	}
	e, err := p.Earnings(ctx, &interfaces.EarningsRequest{Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{1000, 2000, 0}
	if len(e.Nodes) != 3 {
		t.Fatalf("earnings %+v", e)
	}
	for j, n := range e.Nodes {
		if n.Amount != want[j] {
			t.Errorf("node %d earned %d, want %d", j+1, n.Amount, want[j])
		}
	}
}

func TestConfigRefusals(t *testing.T) {
	for _, raw := range []string{`{"nope": 1}`, `{"max_deposit": 5, "price_per_packet": 10}`, `[`} {
		if _, err := ParseConfig([]byte(raw)); !errors.Is(err, interfaces.ErrInvalidArgument) {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

// A ledger apart from the provider's KV (as a chain would be): Redeem
// reads the channel through the Ledger interface.
func TestConformanceWithALedgerApart(t *testing.T) {
	var r reopeners
	accountingtest.Run(t, func(t *testing.T) interfaces.Accounting {
		kv, lkv := memkv.New(), memkv.New()
		return r.open(t, func(t *testing.T) interfaces.Accounting {
			l, err := OpenKVLedger(context.Background(), testConfig().ledger(), lkv)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Open(context.Background(), testConfig(), kv, l)
			if err != nil {
				t.Fatal(err)
			}
			return p
		})
	}, r.options())
}

func TestRefusalsWithALedgerApart(t *testing.T) {
	l, err := OpenKVLedger(context.Background(), testConfig().ledger(), memkv.New())
	if err != nil {
		t.Fatal(err)
	}
	kv := memkv.New()
	p, err := Open(context.Background(), testConfig(), kv, l)
	if err != nil {
		t.Fatal(err)
	}
	c := newPayer(t)
	if err := c.open(t, p, 1, 5000); err != nil {
		t.Fatal(err)
	}
	v := c.next(1000)
	if r, err := redeem(p, 1, v.Marshal(), 100); err != nil || r.Granted != 100 {
		t.Fatalf("a good voucher: %+v, %v", r, err)
	}
	cl := voucher.Close{Channel: c.id}
	cl.Sign(c.key)
	if _, err := l.Close(context.Background(), &cl, 1); err != nil {
		t.Fatal(err)
	}
	nowhere := newPayer(t)
	rand.Read(nowhere.id[:])
	for name, cred := range map[string][]byte{"replayed": v.Marshal(), "on a closed channel": c.next(1000).Marshal(), "on no channel": nowhere.next(1000).Marshal()} {
		before := snapshot(t, kv)
		if _, err := redeem(p, 1, cred, 100); !errors.Is(err, interfaces.ErrPaymentRequired) {
			t.Errorf("a voucher %s: %v", name, err)
		}
		if snapshot(t, kv) != before {
			t.Errorf("a voucher %s changed the store", name)
		}
	}
}
