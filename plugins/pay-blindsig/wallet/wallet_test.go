package wallet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces"
	iw "github.com/sottonet/sotto/interfaces/wallet"
	blindsig "github.com/sottonet/sotto/plugins/pay-blindsig"
	"github.com/sottonet/sotto/plugins/pay-blindsig/token"
)

// link is a provider in process: the client protocol's Issue and Redeem
// carried to the node half, with the provider's error codes.
type link struct {
	a               interfaces.Accounting
	client          interfaces.ClientKey
	issues, redeems int
}

func code(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, interfaces.ErrPaymentRequired):
		return &clientproto.Error{Code: clientproto.CodePaymentRequired, Message: err.Error()}
	case errors.Is(err, interfaces.ErrInvalidArgument):
		return &clientproto.Error{Code: clientproto.CodeBadRequest, Message: "malformed"}
	}
	return &clientproto.Error{Code: clientproto.CodeInternal}
}

func (l *link) Issue(ctx context.Context, epoch uint64, req []byte) ([]byte, error) {
	l.issues++
	r, err := l.a.Issue(ctx, &interfaces.IssueRequest{Epoch: epoch, Request: req, Client: l.client})
	if err != nil {
		return nil, code(err)
	}
	return r.Response, nil
}

func (l *link) Redeem(ctx context.Context, epoch, packets uint64, cred []byte) (uint64, []byte, error) {
	l.redeems++
	r, err := l.a.Redeem(ctx, &interfaces.RedeemRequest{Epoch: epoch, Credential: cred, Packets: packets, Client: l.client})
	if err != nil {
		return 0, nil, code(err)
	}
	return r.Granted, r.Receipt, nil
}

func provider(t *testing.T, a interfaces.Accounting, epoch uint64) iw.Provider {
	t.Helper()
	info, err := a.Info(t.Context(), &interfaces.AccountingInfoRequest{Epoch: epoch})
	if err != nil {
		t.Fatal(err)
	}
	return iw.Provider{Epoch: epoch, Params: info.Params}
}

func issuer(t *testing.T, raw string) *blindsig.Issuer {
	cfg, err := blindsig.ParseConfig([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return blindsig.New(cfg)
}

func TestPayObtainsABatchThenSpendsOneTokenPerPay(t *testing.T) {
	a := issuer(t, `{"free_tokens_per_epoch": 6}`)
	l := &link{a: a, client: interfaces.ClientKey{1}}
	w := New(Options{Batch: 4})
	p := provider(t, a, 1)
	for i := range 6 {
		g, err := w.Pay(t.Context(), l, p)
		if err != nil || g != blindsig.DefaultPacketsPerToken {
			t.Fatalf("pay %d: %d, %v", i, g, err)
		}
	}
	// 4, then 2 (the quota's rest, after a refused 4).
	if b := w.Balance(); b.Obtained != 6 || b.Spent != 6 || b.Credentials != 0 {
		t.Fatalf("balance %+v, want 6 obtained and spent", b)
	}
	if _, err := w.Pay(t.Context(), l, p); !errors.Is(err, iw.ErrCannotPay) {
		t.Fatalf("pay past the quota: err = %v, want ErrCannotPay", err)
	}
	// The next epoch brings a new quota.
	if _, err := w.Pay(t.Context(), l, provider(t, a, 2)); err != nil {
		t.Fatalf("pay in the next epoch: %v", err)
	}
}

func TestSavedTokensAreSpentOnceAndRefusedOnesDropped(t *testing.T) {
	a := issuer(t, `{}`)
	l := &link{a: a, client: interfaces.ClientKey{2}}
	w := New(Options{Batch: 2})
	p := provider(t, a, 1)
	if _, err := w.Pay(t.Context(), l, p); err != nil {
		t.Fatal(err)
	}
	saved, err := w.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	// A restarted client spends the saved token without issuing.
	w2 := New(Options{})
	if err := w2.LoadState(saved); err != nil {
		t.Fatal(err)
	}
	issues := l.issues
	if _, err := w2.Pay(t.Context(), l, p); err != nil || l.issues != issues {
		t.Fatalf("pay from a saved token: %v (issues %d → %d)", err, issues, l.issues)
	}
	// An old copy of the state holds the token spent since: it is refused,
	// dropped, and the wallet buys more.
	w3 := New(Options{Batch: 1})
	if err := w3.LoadState(saved); err != nil {
		t.Fatal(err)
	}
	if _, err := w3.Pay(t.Context(), l, p); err != nil {
		t.Fatal(err)
	}
	if b := w3.Balance(); b.Refused != 1 || b.Obtained != 1 || b.Spent != 1 {
		t.Fatalf("balance %+v, want 1 refused, 1 obtained, 1 spent", b)
	}
	// Tokens past their key's validity are dropped, not presented.
	w4 := New(Options{})
	if err := w4.LoadState(saved); err != nil {
		t.Fatal(err)
	}
	redeems := l.redeems
	w4.Pay(t.Context(), l, provider(t, a, 9))
	if b := w4.Balance(); b.Refused != 0 || l.redeems != redeems+1 {
		t.Fatalf("an expired token was presented: %+v", b)
	}
	if err := w4.LoadState([]byte(`{"tokens":[{"token":"AAAA"}]}`)); err == nil {
		t.Fatal("a state with a malformed token loads")
	}
}

func TestVoucherWallet(t *testing.T) {
	pub, op, _ := ed25519.GenerateKey(rand.Reader)
	raw, _ := json.Marshal(map[string]any{"policy": "voucher", "voucher_keys": []string{hex.EncodeToString(pub)}})
	a := issuer(t, string(raw))
	l := &link{a: a, client: interfaces.ClientKey{3}}
	p := provider(t, a, 1)
	if _, err := New(Options{}).Pay(t.Context(), l, p); !errors.Is(err, iw.ErrCannotPay) {
		t.Fatalf("a wallet without vouchers: err = %v, want ErrCannotPay", err)
	}
	w := New(Options{Batch: 8, Vouchers: [][]byte{voucher(op, 1, 3), voucher(op, 2, 2)}})
	for i := range 5 {
		if _, err := w.Pay(t.Context(), l, p); err != nil {
			t.Fatalf("pay %d of the 5 tokens two vouchers bought: %v", i, err)
		}
	}
	if _, err := w.Pay(t.Context(), l, p); !errors.Is(err, iw.ErrCannotPay) {
		t.Fatalf("pay with both vouchers used up: err = %v, want ErrCannotPay", err)
	}
}

func voucher(op ed25519.PrivateKey, id byte, tokens uint32) []byte {
	return tokenVoucher(op, id, tokens)
}

func TestPayWithoutParamsCannotPay(t *testing.T) {
	if _, err := New(Options{}).Pay(t.Context(), &link{}, iw.Provider{Epoch: 1}); !errors.Is(err, iw.ErrCannotPay) {
		t.Fatalf("err = %v, want ErrCannotPay", err)
	}
}

func tokenVoucher(op ed25519.PrivateKey, id byte, tokens uint32) []byte {
	return token.SignVoucher(op, [16]byte{id}, tokens, 100)
}
