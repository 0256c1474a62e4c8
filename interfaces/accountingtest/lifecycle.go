package accountingtest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/sottonet/sotto/interfaces"
)

// The suite's cases of capping, cancellation, concurrency and restart.

// capped: however many Redeems of one credential run at once, together
// they never grant more than the credential's cap, and one past it is
// refused as payment required (ErrDoubleSpend included).
func capped(t *testing.T, a interfaces.Accounting, o Options) {
	if o.Cap == 0 {
		t.Skip("credentials of this design have no cap (Options.Cap)")
	}
	cred := o.Credential(t, a)
	each := o.Cap/4 + 1 // five of these ask for more than the cap
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		granted uint64
	)
	for range 8 {
		wg.Go(func() {
			r, err := a.Redeem(ctx(t), &interfaces.RedeemRequest{Epoch: 1, Gateway: node(1), Credential: cred, Packets: each})
			switch {
			case err == nil:
				mu.Lock()
				granted += r.Granted
				mu.Unlock()
			case !errors.Is(err, interfaces.ErrPaymentRequired):
				t.Errorf("Redeem past the cap: err = %v, want one wrapping ErrPaymentRequired", err)
			}
		})
	}
	wg.Wait()
	if granted == 0 || granted > o.Cap {
		t.Errorf("8 concurrent redeems of %d packets on a credential capped at %d granted %d in all", each, o.Cap, granted)
	}
	if granted == o.Cap {
		_, err := a.Redeem(ctx(t), &interfaces.RedeemRequest{Epoch: 1, Gateway: node(1), Credential: cred, Packets: 1})
		if !errors.Is(err, interfaces.ErrPaymentRequired) {
			t.Errorf("a redeem once the cap is reached: err = %v, want ErrPaymentRequired", err)
		}
	}
}

// cancelled: a call whose context is already cancelled fails with the
// context's error (or completes, for an implementation that finished
// first); a cancelled RecordWork is all or nothing, and retrying its batch
// counts it once.
func cancelled(t *testing.T, a interfaces.Accounting, o Options) {
	c, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: err = %v, want nil or one wrapping context.Canceled", op, err)
		}
	}
	_, err := a.Info(c, &interfaces.AccountingInfoRequest{Epoch: 1})
	check("Info", err)
	_, err = a.Redeem(c, &interfaces.RedeemRequest{Epoch: 1, Gateway: node(1), Credential: o.Credential(t, a), Packets: 1})
	check("Redeem", err)
	batch := &interfaces.RecordWorkRequest{Epoch: 9, BatchID: []byte("cancelled batch"), Records: []interfaces.WorkRecord{
		{Node: node(5), Kind: interfaces.WorkForwarded, Packets: 2},
		{Node: node(6), Kind: interfaces.WorkDelivered, Packets: 3},
	}}
	_, err = a.RecordWork(c, batch)
	check("RecordWork", err)
	e := earnings(t, a, 9)
	if half := (e[node(5)].Forwarded == 2) != (e[node(6)].Delivered == 3); half {
		t.Errorf("a cancelled RecordWork of two records left only one counted: %v", e)
	}
	record(t, a, 9, "cancelled batch", batch.Records...)
	e = earnings(t, a, 9)
	if e[node(5)].Forwarded != 2 || e[node(6)].Delivered != 3 {
		t.Errorf("after retrying a cancelled batch: %v, want it counted once", e)
	}
	// The implementation is unharmed.
	redeemGrant(t, a, o)
}

// concurrentRedeems: redeems of different credentials at once all
// succeed; none is mistaken for another's spend.
func concurrentRedeems(t *testing.T, a interfaces.Accounting, o Options) {
	creds := make([][]byte, 8)
	for i := range creds {
		creds[i] = o.Credential(t, a)
	}
	var wg sync.WaitGroup
	for _, cred := range creds {
		wg.Go(func() {
			r, err := a.Redeem(ctx(t), &interfaces.RedeemRequest{Epoch: 1, Gateway: node(1), Credential: cred, Packets: 1})
			if err != nil || r.Granted != 1 {
				t.Errorf("one of 8 concurrent redeems of different credentials: %+v, %v; want 1 packet granted", r, err)
			}
		})
	}
	wg.Wait()
}

// restart: what a design must not forget survives closing it and opening
// it again on the same state: counted work, batch IDs, and spends.
func restart(t *testing.T, a interfaces.Accounting, o Options) {
	if o.Reopen == nil {
		t.Skip("no Options.Reopen: the design keeps no state across a restart")
	}
	rec := interfaces.WorkRecord{Node: node(7), Kind: interfaces.WorkForwarded, Packets: 11}
	record(t, a, 3, "before restart", rec)
	var spent []byte
	if o.SingleUse || o.Cap > 0 {
		spent = o.Credential(t, a)
		packets := uint64(1)
		if o.Cap > 0 {
			packets = o.Cap
		}
		var got uint64
		for got < packets { // a capped design may grant in parts
			r, err := a.Redeem(ctx(t), &interfaces.RedeemRequest{Epoch: 1, Gateway: node(1), Credential: spent, Packets: packets - got})
			if err != nil || r.Granted == 0 {
				t.Fatalf("Redeem before the restart: %+v, %v", r, err)
			}
			got += r.Granted
		}
	}
	a = o.Reopen(t, a)
	if n := earnings(t, a, 3)[node(7)]; n.Forwarded != 11 {
		t.Errorf("after a restart node 7 forwarded %d in epoch 3, want 11", n.Forwarded)
	}
	record(t, a, 3, "before restart", rec)
	if n := earnings(t, a, 3)[node(7)]; n.Forwarded != 11 {
		t.Errorf("a batch sent again after a restart was counted again: forwarded %d, want 11", n.Forwarded)
	}
	if spent != nil {
		_, err := a.Redeem(ctx(t), &interfaces.RedeemRequest{Epoch: 1, Gateway: node(1), Credential: spent, Packets: 1})
		if !errors.Is(err, interfaces.ErrPaymentRequired) {
			t.Errorf("a credential spent before the restart: err = %v, want ErrDoubleSpend or ErrPaymentRequired", err)
		}
	}
	redeemGrant(t, a, o)
}
