// Package accountingtest is the conformance suite of the Accounting plugin
// kind. Every design runs it, in process and over gRPC (OverGRPC):
//
//	accountingtest.Run(t, func(t *testing.T) interfaces.Accounting { return openMine(t) }, accountingtest.Options{
//		Credential: func(t *testing.T, a interfaces.Accounting) []byte { ... a fresh, valid credential ... },
//		SingleUse:  true, // spent credentials are refused with ErrDoubleSpend
//	})
//
// Options describe what is design-specific (how to obtain a valid
// credential, whether one is single-use or capped, whether forged ones are
// refused, how to restart the design on its state); everything else is
// checked for every design. The cases, by the names they run under:
//
//   - info names a scheme and fits a descriptor
//   - a valid credential is granted at most what was asked
//   - a spent credential cannot be spent again (SingleUse; 4 at once)
//   - a forged credential is refused (Forged)
//   - an oversized credential is an invalid argument (Redeem and Issue)
//   - work adds up per node and per epoch
//   - a repeated batch ID is counted once
//   - unknown work kinds are invalid arguments
//   - concurrent work reports all count
//   - a credential never grants more than its cap, also concurrently (Cap)
//   - a cancelled call fails with the context's error and a cancelled
//     batch is all or nothing (retrying it counts it once)
//   - concurrent redeems of different credentials all succeed
//   - spent credentials and counted work survive a restart (Reopen)
//
// A case whose option is unset is skipped, saying which option it needs.
// plugins/pay-blindsig sets SingleUse, Forged and Reopen, so the
// double-spend and forgery cases run against real tokens, in process and
// over gRPC.
// To run the suite against the plugin's real binary, as a node starts it,
// see plugintest.Build and plugintest.Process.
package accountingtest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/plugintest"
)

// Options are the design-specific parts of the suite.
type Options struct {
	// Credential returns a fresh credential that Redeem accepts for at
	// least one packet (it may call Issue). Required.
	Credential func(t *testing.T, a interfaces.Accounting) []byte
	// SingleUse: a credential redeemed once is refused with ErrDoubleSpend.
	SingleUse bool
	// Forged, if set, returns a well-formed credential that must be
	// refused with ErrPaymentRequired.
	Forged func(t *testing.T) []byte
	// Cap, if not 0, is how many packets one credential grants in all, for
	// reusable-but-capped designs (a quota per client and epoch, a
	// channel's deposit): concurrent Redeems never grant more.
	Cap uint64
	// Reopen, if set, closes a (as a plugin process stopping would) and
	// returns the design opened again on the same durable state (the same
	// KV, database or files): the restart cases check what must survive.
	Reopen func(t *testing.T, a interfaces.Accounting) interfaces.Accounting
}

// OverGRPC returns a as seen by a host through a real go-plugin gRPC
// connection in this process.
func OverGRPC(t testing.TB, a interfaces.Accounting) interfaces.Accounting {
	t.Helper()
	return plugintest.GRPC(t, interfaces.AccountingKind, a).(interfaces.Accounting)
}

// Run runs the suite; open returns a fresh implementation for each subtest.
func Run(t *testing.T, open func(t *testing.T) interfaces.Accounting, opts Options) {
	if opts.Credential == nil {
		t.Fatal("accountingtest: Options.Credential is required")
	}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, a interfaces.Accounting, o Options)
	}{
		{"info names a scheme and fits a descriptor", info},
		{"a valid credential is granted at most what was asked", redeemGrant},
		{"a spent credential cannot be spent again", doubleSpend},
		{"a forged credential is refused", forged},
		{"an oversized credential is an invalid argument", oversized},
		{"work adds up per node and per epoch", workAddsUp},
		{"a repeated batch ID is counted once", batchIdempotent},
		{"unknown work kinds are invalid arguments", badWorkKind},
		{"concurrent work reports all count", concurrentWork},
		{"a credential never grants more than its cap, also concurrently", capped},
		{"a cancelled call fails with the context's error and a cancelled batch is all or nothing", cancelled},
		{"concurrent redeems of different credentials all succeed", concurrentRedeems},
		{"spent credentials and counted work survive a restart", restart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open(t), opts)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func node(b byte) interfaces.NodeID {
	var n interfaces.NodeID
	n[0] = b
	return n
}

// client is a client key as a host passes it (RedeemRequest.Client).
func client(b byte) interfaces.ClientKey {
	var k interfaces.ClientKey
	k[0], k[31] = b, ^b
	return k
}

func info(t *testing.T, a interfaces.Accounting, _ Options) {
	r, err := a.Info(ctx(t), &interfaces.AccountingInfoRequest{Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Scheme == "" {
		t.Error("Info names no scheme")
	}
	if len(r.Params) > interfaces.MaxAccountingLen {
		t.Errorf("Info params of %d bytes do not fit a descriptor (%d)", len(r.Params), interfaces.MaxAccountingLen)
	}
}

func redeemGrant(t *testing.T, a interfaces.Accounting, o Options) {
	r, err := a.Redeem(ctx(t), &interfaces.RedeemRequest{Epoch: 1, Gateway: node(1), Credential: o.Credential(t, a), Packets: 5, Client: client(1)})
	if err != nil {
		t.Fatalf("Redeem of a valid credential: %v", err)
	}
	if r.Granted == 0 || r.Granted > 5 {
		t.Errorf("granted %d packets for a request of 5", r.Granted)
	}
}

func doubleSpend(t *testing.T, a interfaces.Accounting, o Options) {
	if !o.SingleUse {
		t.Skip("credentials of this design are not single-use")
	}
	cred := o.Credential(t, a)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, spent := 0, 0
	for range 4 {
		wg.Go(func() {
			_, err := a.Redeem(ctx(t), &interfaces.RedeemRequest{Epoch: 1, Gateway: node(1), Credential: cred, Packets: 1, Client: client(2)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, interfaces.ErrDoubleSpend):
				spent++
			default:
				t.Errorf("Redeem: %v", err)
			}
		})
	}
	wg.Wait()
	if ok != 1 || spent != 3 {
		t.Errorf("4 concurrent redeems of one credential: %d accepted, %d refused as double spends; want 1 and 3", ok, spent)
	}
}

func forged(t *testing.T, a interfaces.Accounting, o Options) {
	if o.Forged == nil {
		t.Skip("this design accepts every well-formed credential")
	}
	_, err := a.Redeem(ctx(t), &interfaces.RedeemRequest{Epoch: 1, Gateway: node(1), Credential: o.Forged(t), Packets: 1})
	if !errors.Is(err, interfaces.ErrPaymentRequired) {
		t.Errorf("Redeem of a forged credential: err = %v, want ErrPaymentRequired", err)
	}
}

func oversized(t *testing.T, a interfaces.Accounting, _ Options) {
	big := bytes.Repeat([]byte{1}, interfaces.MaxCredentialLen+1)
	if _, err := a.Redeem(ctx(t), &interfaces.RedeemRequest{Epoch: 1, Gateway: node(1), Credential: big, Packets: 1}); !errors.Is(err, interfaces.ErrInvalidArgument) {
		t.Errorf("Redeem: err = %v, want ErrInvalidArgument", err)
	}
	if _, err := a.Issue(ctx(t), &interfaces.IssueRequest{Epoch: 1, Request: big}); !errors.Is(err, interfaces.ErrInvalidArgument) {
		t.Errorf("Issue: err = %v, want ErrInvalidArgument", err)
	}
}

func record(t *testing.T, a interfaces.Accounting, epoch uint64, batch string, recs ...interfaces.WorkRecord) {
	t.Helper()
	var id []byte
	if batch != "" {
		id = []byte(batch)
	}
	if _, err := a.RecordWork(ctx(t), &interfaces.RecordWorkRequest{Epoch: epoch, BatchID: id, Records: recs}); err != nil {
		t.Fatalf("RecordWork: %v", err)
	}
}

func earnings(t *testing.T, a interfaces.Accounting, epoch uint64) map[interfaces.NodeID]interfaces.NodeEarnings {
	t.Helper()
	r, err := a.Earnings(ctx(t), &interfaces.EarningsRequest{Epoch: epoch})
	if err != nil {
		t.Fatalf("Earnings: %v", err)
	}
	out := map[interfaces.NodeID]interfaces.NodeEarnings{}
	for i, n := range r.Nodes {
		if i > 0 && bytes.Compare(r.Nodes[i-1].Node[:], n.Node[:]) >= 0 {
			t.Errorf("Earnings not in ascending NodeID order at %d", i)
		}
		out[n.Node] = n
	}
	return out
}

func workAddsUp(t *testing.T, a interfaces.Accounting, _ Options) {
	if got := earnings(t, a, 7); len(got) != 0 {
		t.Fatalf("an epoch without work has earnings %v", got)
	}
	record(t, a, 7, "", interfaces.WorkRecord{Node: node(2), Kind: interfaces.WorkForwarded, Packets: 10},
		interfaces.WorkRecord{Node: node(1), Kind: interfaces.WorkDelivered, Packets: 3})
	record(t, a, 7, "", interfaces.WorkRecord{Node: node(2), Kind: interfaces.WorkForwarded, Packets: 5},
		interfaces.WorkRecord{Node: node(2), Kind: interfaces.WorkProbed, Packets: 2})
	record(t, a, 8, "", interfaces.WorkRecord{Node: node(2), Kind: interfaces.WorkForwarded, Packets: 100})
	got := earnings(t, a, 7)
	if n := got[node(2)]; n.Forwarded != 15 || n.Probed != 2 || n.Delivered != 0 {
		t.Errorf("node 2 in epoch 7 = %+v, want 15 forwarded, 2 probed", n)
	}
	if n := got[node(1)]; n.Delivered != 3 {
		t.Errorf("node 1 in epoch 7 = %+v, want 3 delivered", n)
	}
	if n := earnings(t, a, 8)[node(2)]; n.Forwarded != 100 {
		t.Errorf("node 2 in epoch 8 = %+v, want 100 forwarded", n)
	}
}

func batchIdempotent(t *testing.T, a interfaces.Accounting, _ Options) {
	rec := interfaces.WorkRecord{Node: node(3), Kind: interfaces.WorkForwarded, Packets: 4}
	record(t, a, 1, "batch-1", rec)
	record(t, a, 1, "batch-1", rec)
	record(t, a, 1, "batch-2", rec)
	if n := earnings(t, a, 1)[node(3)]; n.Forwarded != 8 {
		t.Errorf("forwarded = %d after batches 1, 1, 2 of 4 packets; want 8", n.Forwarded)
	}
}

func badWorkKind(t *testing.T, a interfaces.Accounting, _ Options) {
	for _, k := range []interfaces.WorkKind{0, 200} {
		_, err := a.RecordWork(ctx(t), &interfaces.RecordWorkRequest{Epoch: 1, Records: []interfaces.WorkRecord{{Node: node(1), Kind: k, Packets: 1}}})
		if !errors.Is(err, interfaces.ErrInvalidArgument) {
			t.Errorf("work kind %d: err = %v, want ErrInvalidArgument", k, err)
		}
	}
}

func concurrentWork(t *testing.T, a interfaces.Accounting, _ Options) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if _, err := a.RecordWork(ctx(t), &interfaces.RecordWorkRequest{Epoch: 2, Records: []interfaces.WorkRecord{{Node: node(4), Kind: interfaces.WorkDelivered, Packets: 1}}}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := earnings(t, a, 2)[node(4)]; n.Delivered != 80 {
		t.Errorf("delivered = %d after 80 concurrent reports of 1, want 80", n.Delivered)
	}
}
