package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces/wallet"
)

// chargingProvider is a simProvider that charges as a provider with an
// accounting plugin does: each Send costs one packet of the allowance a
// Redeem fills, and a Send with none left is refused for payment. Issue
// answers "buy" with a credential worth perCredential packets.
type chargingProvider struct {
	*simProvider
	perCredential uint64

	mu        sync.Mutex
	allowance uint64
	issued    int
	spent     map[string]bool
}

func (p *chargingProvider) Send(ctx context.Context, hop [32]byte, pkt []byte) error {
	p.mu.Lock()
	if p.allowance == 0 {
		p.mu.Unlock()
		return &clientproto.Error{Code: clientproto.CodePaymentRequired, Message: "no packets left; redeem a credential"}
	}
	p.allowance--
	p.mu.Unlock()
	return p.simProvider.Send(ctx, hop, pkt)
}

func (p *chargingProvider) Issue(ctx context.Context, epoch uint64, req []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if string(req) != "buy" {
		return nil, &clientproto.Error{Code: clientproto.CodePaymentRequired}
	}
	p.issued++
	return []byte("credential " + strconv.Itoa(p.issued)), nil
}

func (p *chargingProvider) Redeem(ctx context.Context, epoch, packets uint64, cred []byte) (uint64, []byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.spent == nil {
		p.spent = map[string]bool{}
	}
	if p.spent[string(cred)] {
		return 0, nil, &clientproto.Error{Code: clientproto.CodePaymentRequired, Message: "credential already spent"}
	}
	p.spent[string(cred)] = true
	g := min(packets, p.perCredential)
	p.allowance += g
	return g, nil, nil
}

// budgetWallet can buy budget credentials; its state is what is left.
type budgetWallet struct {
	mu     sync.Mutex
	budget int
	spent  uint64
}

func (w *budgetWallet) Pay(ctx context.Context, l wallet.Link, p wallet.Provider) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.budget == 0 {
		return 0, fmt.Errorf("%w: budget spent", wallet.ErrCannotPay)
	}
	cred, err := l.Issue(ctx, p.Epoch, []byte("buy"))
	if err != nil {
		return 0, err
	}
	w.budget--
	g, _, err := l.Redeem(ctx, p.Epoch, 1000, cred)
	if err == nil {
		w.spent++
	}
	return g, err
}

func (w *budgetWallet) Balance() wallet.Balance {
	w.mu.Lock()
	defer w.mu.Unlock()
	return wallet.Balance{Scheme: "budget", Credentials: w.budget, Spent: w.spent}
}

func (w *budgetWallet) MarshalState() ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return json.Marshal(w.budget)
}

func (w *budgetWallet) LoadState(b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return json.Unmarshal(b, &w.budget)
}

// payingClient is a client of a charging provider with wallet w (nil: none).
func payingClient(t *testing.T, net *simNet, w wallet.Wallet, per uint64) (*Client, *chargingProvider) {
	var cp *chargingProvider
	c, _ := net.newClient(t, 0, 7, func(cfg *Config) {
		cp = &chargingProvider{simProvider: cfg.Provider.(*simProvider), perCredential: per}
		cfg.Provider = cp
		if w != nil {
			cfg.Wallet = w
		}
		cfg.PayAhead = 5
	})
	return c, cp
}

func TestAClientWithAWalletPaysAheadAndItsMessagesGoOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		w := &budgetWallet{budget: 1000}
		c, p := payingClient(t, net, w, 20)
		to := &Contact{Network: net.network, Key: c.MessageKey(), Provider: net.provs[1], Mailbox: [32]byte{1}}
		stop := start(t, c)
		waitReady(t, c)
		var ids []MessageID
		for i := range 3 {
			id, err := c.Send(t.Context(), to, []byte{byte(i)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		time.Sleep(60 * time.Second) // ≈ 420 packets at λ = 7/s
		stop()
		net.close()
		s := c.Stats()
		if s.MessagesSent != 3 {
			t.Errorf("%d of 3 messages sent", s.MessagesSent)
		}
		sent := s.PacketsPayload + s.PacketsLoop + s.PacketsDrop - s.SendErrors
		if s.Payments < sent/20 || s.Payments == 0 {
			t.Errorf("%d payments for %d packets at 20 a credential", s.Payments, sent)
		}
		// Only the first packet, before the client knew the provider
		// charges, is refused: after that it pays ahead.
		if s.PaymentRefused != 1 {
			t.Errorf("%d packets refused for payment, want 1 (pay ahead keeps cover traffic going)", s.PaymentRefused)
		}
		if s.Wallet.Spent != s.Payments {
			t.Errorf("wallet balance %+v, client counted %d payments", s.Wallet, s.Payments)
		}
		_ = p
	})
}

func TestAClientThatCannotPayIsToldSoAndDropsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    wallet.Wallet
	}{{"without a wallet", nil}, {"whose wallet runs out", &budgetWallet{budget: 2}}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				net := newSimNet(t, 2, testParams())
				c, _ := payingClient(t, net, tc.w, 10)
				to := &Contact{Network: net.network, Key: c.MessageKey(), Provider: net.provs[1], Mailbox: [32]byte{1}}
				stop := start(t, c)
				waitReady(t, c)
				if _, err := c.Send(t.Context(), to, []byte("queued before")); err != nil {
					t.Fatal(err)
				}
				time.Sleep(30 * time.Second)
				_, err := c.Send(t.Context(), to, []byte("refused"))
				stop()
				net.close()
				if !errors.Is(err, ErrPaymentRequired) {
					t.Fatalf("Send once the provider refuses packets and the client cannot pay: err = %v, want ErrPaymentRequired", err)
				}
				s := c.Stats()
				if s.PaymentRefused == 0 || s.MessagesFailed != 0 {
					t.Fatalf("stats %+v: want packets refused for payment and no message failed", s)
				}
				if tc.w != nil && s.PaymentFailures == 0 {
					t.Fatal("the wallet's failures are not counted")
				}
			})
		})
	}
}

func TestTheWalletIsKeptInTheClientsState(t *testing.T) {
	net := newSimNet(t, 1, testParams())
	c, _ := payingClient(t, net, &budgetWallet{budget: 7}, 10)
	st, err := c.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	w := &budgetWallet{}
	c2, _ := net.newClient(t, 0, 8, func(cfg *Config) { cfg.Identity = c.Identity(); cfg.Wallet = w })
	if err := c2.LoadState(st); err != nil {
		t.Fatal(err)
	}
	if w.Balance().Credentials != 7 {
		t.Fatalf("a loaded wallet holds %d, want 7", w.Balance().Credentials)
	}
	net.close()
}
