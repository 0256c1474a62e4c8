package sphinx

import (
	"testing"

	"github.com/sottonet/sotto/core/sphinx/internal/aez"
)

// BenchmarkUnwrap is one hop of the default geometry at a mix.
func BenchmarkUnwrap(b *testing.B) {
	g := DefaultGeometry()
	r := testRand(21)
	nodes := newTestNodes(b, r, 5)
	pkt, err := NewPacket(r, g, forwardPath(nodes, &Recipient{}), testPayload(g, 0))
	if err != nil {
		b.Fatal(err)
	}
	u := NewUnwrapper(g, nodes[0].priv)
	var res Result
	work := make([]byte, len(pkt))
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		copy(work, pkt)
		if err := u.Unwrap(work, &res); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

// BenchmarkNewPacket is a sender's 5-hop forward packet, default geometry.
func BenchmarkNewPacket(b *testing.B) {
	g := DefaultGeometry()
	r := testRand(22)
	nodes := newTestNodes(b, r, 5)
	path := forwardPath(nodes, &Recipient{})
	payload := testPayload(g, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewPacket(r, g, path, payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAEZ enciphers 2 KiB, the payload SPRP's share of a hop.
func BenchmarkAEZ(b *testing.B) {
	var c aez.Cipher
	var key [48]byte
	var iv [16]byte
	c.SetKey(&key)
	buf := make([]byte, 2048)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		c.Encipher(buf, buf, &iv)
	}
}
