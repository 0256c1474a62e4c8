package wallet

import (
	"context"
	"errors"
	"testing"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces"
	iw "github.com/sottonet/sotto/interfaces/wallet"
	channels "github.com/sottonet/sotto/plugins/pay-channels"
)

// link is a provider in process: the client protocol's Issue and Redeem
// carried to the node half, with host/provider's error codes and
// messages. loseNext drops the reply of the next Redeem after the
// provider handled it.
type link struct {
	a               interfaces.Accounting
	issues, redeems int
	loseNext        bool
}

func code(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, interfaces.ErrDoubleSpend):
		return &clientproto.Error{Code: clientproto.CodePaymentRequired, Message: "credential already spent"}
	case errors.Is(err, interfaces.ErrPaymentRequired):
		return &clientproto.Error{Code: clientproto.CodePaymentRequired, Message: "credential refused"}
	case errors.Is(err, interfaces.ErrInvalidArgument):
		return &clientproto.Error{Code: clientproto.CodeBadRequest, Message: "malformed"}
	}
	return &clientproto.Error{Code: clientproto.CodeInternal}
}

func (l *link) Issue(ctx context.Context, epoch uint64, req []byte) ([]byte, error) {
	l.issues++
	r, err := l.a.Issue(ctx, &interfaces.IssueRequest{Epoch: epoch, Request: req, Client: interfaces.ClientKey{7}})
	if err != nil {
		return nil, code(err)
	}
	return r.Response, nil
}

func (l *link) Redeem(ctx context.Context, epoch, packets uint64, cred []byte) (uint64, []byte, error) {
	l.redeems++
	r, err := l.a.Redeem(ctx, &interfaces.RedeemRequest{Epoch: epoch, Credential: cred, Packets: packets, Client: interfaces.ClientKey{7}})
	if l.loseNext {
		l.loseNext = false
		return 0, nil, context.DeadlineExceeded
	}
	if err != nil {
		return 0, nil, code(err)
	}
	return r.Granted, r.Receipt, nil
}

func setup(t *testing.T) (*channels.Provider, *channels.KVLedger, *link) {
	cfg, err := channels.ParseConfig([]byte(`{"price_per_packet": 10, "packets_per_voucher": 100, "max_deposit": 5000, "max_channel_epochs": 10, "dispute_epochs": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	p, l := channels.New(cfg)
	return p, l, &link{a: p}
}

func provider(t *testing.T, a interfaces.Accounting, epoch uint64) iw.Provider {
	t.Helper()
	info, err := a.Info(t.Context(), &interfaces.AccountingInfoRequest{Epoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	return iw.Provider{Epoch: epoch, Params: info.Params}
}

// A wallet opens one channel, pays a voucher per Pay until its deposit is
// spent, then closes it on the ledger and opens the next.
func TestPayOpensAChannelAndRollsOverWhenSpent(t *testing.T) {
	p, l, lk := setup(t)
	w := New(Options{})
	pr := provider(t, p, 1)
	for i := range 7 {
		g, err := w.Pay(t.Context(), lk, pr)
		if err != nil || g != 100 {
			t.Fatalf("pay %d: %d, %v", i, g, err)
		}
	}
	if lk.issues != 3 { // open, close, open
		t.Errorf("%d issues for 7 vouchers on 5-voucher deposits, want 3 (open, close, open)", lk.issues)
	}
	ch, _ := w.Channel(p.Payee())
	if ch.Nonce != 2 || ch.Amount != 2000 {
		t.Errorf("the second channel holds nonce %d, amount %d; want 2, 2000", ch.Nonce, ch.Amount)
	}
	if b := w.Balance(); b.Spent != 7 || b.Obtained != 10 || b.Credentials != 3 {
		t.Errorf("balance %+v, want 7 spent of 10 obtained, 3 left", b)
	}
	_ = l
}

// A voucher whose reply was lost is sent again byte for byte; the
// provider, which took it, says so, and the wallet goes on from it: the
// client pays once for it.
func TestALostReplyIsNotPaidTwice(t *testing.T) {
	p, l, lk := setup(t)
	w := New(Options{})
	pr := provider(t, p, 1)
	lk.loseNext = true
	if _, err := w.Pay(t.Context(), lk, pr); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pay with its reply lost: %v", err)
	}
	if g, err := w.Pay(t.Context(), lk, pr); err != nil || g != 100 {
		t.Fatalf("pay after a lost reply: %d, %v", g, err)
	}
	ch, _ := w.Channel(p.Payee())
	if ch.Nonce != 2 || ch.Amount != 2000 {
		t.Errorf("after a lost reply and one more pay: nonce %d, amount %d; want 2, 2000", ch.Nonce, ch.Amount)
	}
	// The provider holds the same.
	if _, err := p.Settle(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	st, _ := l.Channel(t.Context(), ch.ID)
	if st.Amount != 2000 {
		t.Errorf("the ledger holds %d claimed, want 2000", st.Amount)
	}
}

// The client closes its channel and, after the dispute window, recovers
// what it did not spend; a restarted client (saved state) pays on.
func TestCloseSettleAndSavedState(t *testing.T) {
	p, l, lk := setup(t)
	w := New(Options{Deposit: 4000})
	pr := provider(t, p, 1)
	if _, err := w.Pay(t.Context(), lk, pr); err != nil {
		t.Fatal(err)
	}
	saved, err := w.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	w2 := New(Options{})
	if err := w2.LoadState(saved); err != nil {
		t.Fatal(err)
	}
	issues := lk.issues
	if _, err := w2.Pay(t.Context(), lk, pr); err != nil || lk.issues != issues {
		t.Fatalf("a restored wallet pays on its channel: %v (issues %d → %d)", err, issues, lk.issues)
	}
	st, err := w2.Close(t.Context(), lk, provider(t, p, 2))
	if err != nil {
		t.Fatal(err)
	}
	if st.Closing != 2 || st.Amount != 2000 {
		t.Fatalf("closed: %+v", st)
	}
	if _, err := w2.Settle(t.Context(), lk, provider(t, p, 3)); !errors.Is(err, clientproto.ErrPaymentRequired) {
		t.Fatalf("settling inside the window: %v", err)
	}
	st, err = w2.Settle(t.Context(), lk, provider(t, p, 4))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Settled || st.Refund() != 2000 {
		t.Errorf("settled %+v, want 2000 back", st)
	}
	if b, _ := l.Balance(t.Context(), w2.Payer()); b != 2000 {
		t.Errorf("the client's key holds %d on the ledger, want 2000", b)
	}
	// The old copy of the state pays with a voucher the provider holds a
	// newer one than, on a closed channel: refused, and the wallet opens
	// a new channel.
	w3 := New(Options{})
	if err := w3.LoadState(saved); err != nil {
		t.Fatal(err)
	}
	if _, err := w3.Pay(t.Context(), lk, provider(t, p, 4)); err != nil {
		t.Fatal(err)
	}
	if b := w3.Balance(); b.Refused != 1 || b.Spent != 1 {
		t.Errorf("balance %+v, want 1 refused and 1 spent", b)
	}
	if err := w3.LoadState([]byte(`{"seed":"AAAA"}`)); err == nil {
		t.Error("a state with a short seed loads")
	}
}

func TestPayWithoutParamsCannotPay(t *testing.T) {
	if _, err := New(Options{}).Pay(t.Context(), &link{}, iw.Provider{Epoch: 1}); !errors.Is(err, iw.ErrCannotPay) {
		t.Fatalf("err = %v, want ErrCannotPay", err)
	}
}
