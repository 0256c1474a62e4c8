package provider

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/wallet"
	channels "github.com/sottonet/sotto/plugins/pay-channels"
	"github.com/sottonet/sotto/plugins/pay-channels/voucher"
	chwallet "github.com/sottonet/sotto/plugins/pay-channels/wallet"
)

// End to end at a provider with pay-channels: a client with no channel has
// its Send refused; its wallet opens a channel with the client protocol's
// Issue and pays with a voucher through Redeem; then it sends; a voucher
// sent again is refused over the wire as already spent, which the wallet
// reads as "taken before" and goes on from, paying once for it.
func TestPaymentChannelOverTheClientProtocol(t *testing.T) {
	cfg, err := channels.ParseConfig([]byte(`{"price_per_packet": 10, "packets_per_voucher": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	acc, _ := channels.New(cfg)
	p := startProvider(t, func(c *Config) { c.Accounting = acc })
	c := p.dial(t)
	ctx := ctxT(t)
	if err := c.Send(ctx, p.backend.id, packet(1)); !errors.Is(err, clientproto.ErrPaymentRequired) {
		t.Fatalf("a send with no channel: err = %v, want payment required", err)
	}
	info, err := acc.Info(ctx, &interfaces.AccountingInfoRequest{Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	w := chwallet.New(chwallet.Options{})
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
	ch, _ := w.Channel(acc.Payee())
	// The voucher the provider holds, sent again by hand: refused as spent.
	saved, _ := w.MarshalState()
	if _, err := w.Pay(ctx, c.Conn, prov); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Conn.Redeem(ctx, 1, 3, lastVoucher(t, w, acc.Payee()))
	var pe *clientproto.Error
	if !errors.As(err, &pe) || pe.Code != clientproto.CodePaymentRequired || pe.Message != "credential already spent" {
		t.Fatalf("a voucher sent again: err = %v, want payment required, credential already spent", err)
	}
	// A wallet restored from before the second voucher signs one the
	// provider holds already: refused; the wallet closes that channel (the
	// ledger settles on the provider's newest voucher) and opens the next.
	old := chwallet.New(chwallet.Options{})
	if err := old.LoadState(saved); err != nil {
		t.Fatal(err)
	}
	if g, err := old.Pay(ctx, c.Conn, prov); err != nil || g != 3 {
		t.Fatalf("an old wallet state: %d, %v; want a new channel and 3 packets", g, err)
	}
	if b := old.Balance(); b.Refused != 1 || b.Spent != 1 {
		t.Errorf("the old state's balance %+v, want 1 refused, 1 spent", b)
	}
	if now, _ := old.Channel(acc.Payee()); now.ID == ch.ID || now.Nonce != 1 {
		t.Errorf("the old state pays on %x at nonce %d, want a new channel", now.ID[:4], now.Nonce)
	}
	if got := p.metric(t, "sotto_provider_requests_total", "op", "issue", "result", "ok"); got != 3 {
		t.Errorf("%v issues served, want 3 (open; close and open again)", got)
	}
}

// lastVoucher signs again the newest voucher w sent on its channel to
// payee (Ed25519 is deterministic: the same bytes).
func lastVoucher(t *testing.T, w *chwallet.Wallet, payee [32]byte) []byte {
	t.Helper()
	ch, ok := w.Channel(payee)
	if !ok {
		t.Fatal("no channel")
	}
	st, err := w.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	var saved struct{ Seed []byte }
	if err := json.Unmarshal(st, &saved); err != nil {
		t.Fatal(err)
	}
	v := voucher.Voucher{Channel: ch.ID, Nonce: ch.Nonce, Amount: ch.Amount}
	v.Sign(ed25519.NewKeyFromSeed(saved.Seed))
	return v.Marshal()
}
