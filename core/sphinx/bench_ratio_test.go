package sphinx

import (
	"crypto/ecdh"
	"slices"
	"testing"
	"time"
)

// BenchmarkRatios measures the ratios docs/BENCHMARKS.md holds Sphinx to,
// Unwrap / (2 × X25519) and NewPacket / X25519, by timing one X25519, one
// Unwrap and one 5-hop NewPacket in turn within every iteration and comparing
// the medians of the calls' times, so that the load of a shared machine falls
// on all three alike (BenchmarkX25519, BenchmarkUnwrap and BenchmarkNewPacket
// time them one after the other, and a build starting in between moves their
// ratio). Run it natively (AES-NI AEZ) and under GOOS=js GOARCH=wasm
// (bitsliced AEZ):
//
//	go test -run '^$' -bench Ratios -count 6 ./core/sphinx/
func BenchmarkRatios(b *testing.B) {
	g := DefaultGeometry()
	r := testRand(23)
	priv, err := ecdh.X25519().GenerateKey(r)
	if err != nil {
		b.Fatal(err)
	}
	peer, err := ecdh.X25519().GenerateKey(r)
	if err != nil {
		b.Fatal(err)
	}
	pub := peer.PublicKey()
	nodes := newTestNodes(b, r, 5)
	path := forwardPath(nodes, &Recipient{})
	payload := testPayload(g, 0)
	pkt, err := NewPacket(r, g, path, payload)
	if err != nil {
		b.Fatal(err)
	}
	u := NewUnwrapper(g, nodes[0].priv)
	var res Result
	work := make([]byte, len(pkt))

	// Each call's own time is kept and the medians compared: a burst of load
	// or a GC cycle lands on a few calls and moves a median much less than a
	// sum.
	var dx, du, dn []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := priv.ECDH(pub); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		copy(work, pkt)
		if err := u.Unwrap(work, &res); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := NewPacket(r, g, path, payload); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		dx, du, dn = append(dx, t1.Sub(t0)), append(du, t2.Sub(t1)), append(dn, t3.Sub(t2))
	}
	x, un, np := medianNs(dx), medianNs(du), medianNs(dn)
	b.ReportMetric(x, "ns/X25519")
	b.ReportMetric(un, "ns/Unwrap")
	b.ReportMetric(np, "ns/NewPacket")
	b.ReportMetric(un/(2*x), "Unwrap/2X25519")
	b.ReportMetric(np/x, "NewPacket/X25519")
	b.ReportMetric(0, "ns/op") // the sum of the three: not a figure anyone quotes
}

// medianNs returns the median of d in nanoseconds.
func medianNs(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2].Nanoseconds())
}
