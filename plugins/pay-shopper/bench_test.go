package shopper

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/interfaces"
)

// BenchmarkRatios times, interleaved in one run, what the shopper costs
// against one Sphinx unwrap (what every packet costs a node anyway): a
// gateway's Redeem of the empty credential (in process; one per
// wallet.Ask = 1000 packets), an auditor building one probe, inferring an
// epoch's scores (3 layers × 3 mixes, 36 paths) and the ledger recording
// that report (in-memory KV).
func BenchmarkRatios(b *testing.B) {
	g := sphinx.DefaultGeometry()
	n := newNet(b, 3, 3, 1)
	aid := [32]byte{0xa1}
	n.addKey(b, aid)
	paths, _ := Plan(n.layers, 4, n.r)
	hops := []Hop{}
	for _, m := range paths[0] {
		hops = append(hops, Hop{ID: m, Key: n.keys[m].PublicKey()})
	}
	hops = append(hops, Hop{ID: aid, Key: n.keys[aid].PublicKey()})
	delays := make([]time.Duration, len(hops)-1)
	pkt, _ := BuildProbe(rand.Reader, g, hops, delays, [sphinx.RecipientIDLength]byte{}, [ProbeIDLength]byte{})
	u := sphinx.NewUnwrapper(g, n.keys[hops[0].ID])
	var res sphinx.Result
	buf := make([]byte, len(pkt))
	outs := make([]Outcome, len(paths))
	for i, p := range paths {
		outs[i] = Outcome{Path: p, Sent: 10, Returned: 9}
	}
	l := New(DefaultConfig)
	ctx := context.Background()
	a := NewAuditor(aid, paths)
	var tUnwrap, tRedeem, tProbe, tInfer, tRecord time.Duration
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i++
		t0 := time.Now()
		copy(buf, pkt)
		_ = u.Unwrap(buf, &res)
		t1 := time.Now()
		_, _ = l.Redeem(ctx, &interfaces.RedeemRequest{Epoch: 1, Packets: 1000})
		t2 := time.Now()
		_, _ = BuildProbe(rand.Reader, g, hops, delays, [sphinx.RecipientIDLength]byte{}, [ProbeIDLength]byte{1})
		t3 := time.Now()
		_ = Report(outs)
		t4 := time.Now()
		for j := range outs {
			a.outs[j] = outs[j]
		}
		_, _ = l.RecordWork(ctx, a.Close(i))
		t5 := time.Now()
		tUnwrap += t1.Sub(t0)
		tRedeem += t2.Sub(t1)
		tProbe += t3.Sub(t2)
		tInfer += t4.Sub(t3)
		tRecord += t5.Sub(t4)
	}
	u0 := float64(tUnwrap)
	b.ReportMetric(u0/float64(i), "unwrap-ns")
	b.ReportMetric(float64(tRedeem)/u0, "redeem/unwrap")
	b.ReportMetric(float64(tProbe)/u0, "probe-build/unwrap")
	b.ReportMetric(float64(tInfer)/u0, "infer-epoch/unwrap")
	b.ReportMetric(float64(tRecord)/u0, "record-epoch/unwrap")
}
