package provider

import (
	"errors"
	"testing"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/wallet"
	blindsig "github.com/sottonet/sotto/plugins/pay-blindsig"
	bswallet "github.com/sottonet/sotto/plugins/pay-blindsig/wallet"
)

// End to end at a provider with pay-blindsig: a client with no credential
// has its Send refused as payment required; its wallet obtains tokens with
// the client protocol's Issue and spends one with Redeem; then it sends;
// a token spent twice is refused, over the wire too.
func TestBlindSignaturePaymentOverTheClientProtocol(t *testing.T) {
	cfg, err := blindsig.ParseConfig([]byte(`{"free_tokens_per_epoch": 2, "packets_per_token": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	acc := blindsig.New(cfg)
	p := startProvider(t, func(c *Config) { c.Accounting = acc })
	c := p.dial(t)
	ctx := ctxT(t)
	if err := c.Send(ctx, p.backend.id, packet(1)); !errors.Is(err, clientproto.ErrPaymentRequired) {
		t.Fatalf("a send with no credential: err = %v, want payment required", err)
	}
	info, err := acc.Info(ctx, &interfaces.AccountingInfoRequest{Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	w := bswallet.New(bswallet.Options{Batch: 2})
	prov := wallet.Provider{Epoch: 1, Params: info.Params}
	granted, err := w.Pay(ctx, c.Conn, prov)
	if err != nil || granted != 3 {
		t.Fatalf("pay: %d, %v; want 3 packets", granted, err)
	}
	for i := range 3 {
		if err := c.Send(ctx, p.backend.id, packet(byte(i))); err != nil {
			t.Fatalf("send %d of 3 paid: %v", i, err)
		}
	}
	if err := c.Send(ctx, p.backend.id, packet(9)); !errors.Is(err, clientproto.ErrPaymentRequired) {
		t.Fatalf("a send past the paid packets: err = %v", err)
	}
	// The second token of the batch, saved before it is spent, is refused
	// the second time.
	saved, _ := w.MarshalState()
	if _, err := w.Pay(ctx, c.Conn, prov); err != nil {
		t.Fatal(err)
	}
	again := bswallet.New(bswallet.Options{})
	if err := again.LoadState(saved); err != nil {
		t.Fatal(err)
	}
	// Its only token is spent and the quota (2) used up: it cannot pay.
	if _, err := again.Pay(ctx, c.Conn, prov); !errors.Is(err, wallet.ErrCannotPay) {
		t.Fatalf("paying with a spent token and no quota: err = %v, want ErrCannotPay", err)
	}
	if b := again.Balance(); b.Refused != 1 {
		t.Fatalf("balance %+v: want the spent token refused", b)
	}
	if got := p.metric(t, "sotto_provider_requests_total", "op", "issue", "result", "ok"); got != 1 {
		t.Errorf("%v issues served, want 1 (a batch of 2)", got)
	}
}
