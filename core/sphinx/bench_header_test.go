package sphinx

import (
	"crypto/ecdh"
	"testing"
)

// BenchmarkX25519 is the floor: one scalar multiplication with crypto/ecdh
// and a preloaded key. Unwrap's target is ≤ 1.25 × 2 × this.
func BenchmarkX25519(b *testing.B) {
	r := testRand(20)
	priv, err := ecdh.X25519().GenerateKey(r)
	if err != nil {
		b.Fatal(err)
	}
	peer, err := ecdh.X25519().GenerateKey(r)
	if err != nil {
		b.Fatal(err)
	}
	pub := peer.PublicKey()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := priv.ECDH(pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkX25519Ladder is this package's allocation-free ladder.
func BenchmarkX25519Ladder(b *testing.B) {
	var out, k, u [32]byte
	k[0], u[0] = 42, 9
	b.ReportAllocs()
	for b.Loop() {
		x25519(&out, &k, &u)
	}
}

// BenchmarkNewPacketLadder is the same packet with Katzenpost's O(hops²)
// construction, for comparison.
func BenchmarkNewPacketLadder(b *testing.B) {
	g := DefaultGeometry()
	r := testRand(23)
	nodes := newTestNodes(b, r, 5)
	path := forwardPath(nodes, &Recipient{})
	hdr := make([]byte, g.HeaderLength)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := buildHeader(r, g, path, hdr, secretsSlow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewPacketHeader is the header of a 5-hop packet with the fast
// path; the rest of NewPacket is 5 AEZ passes over the body.
func BenchmarkNewPacketHeader(b *testing.B) {
	g := DefaultGeometry()
	r := testRand(24)
	nodes := newTestNodes(b, r, 5)
	path := forwardPath(nodes, &Recipient{})
	hdr := make([]byte, g.HeaderLength)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := buildHeader(r, g, path, hdr, secretsFast); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnwrapHeader is a mix's header step (two X25519 ladders, KDF,
// MAC, AES-CTR), all of Unwrap but the AEZ pass over the body.
func BenchmarkUnwrapHeader(b *testing.B) {
	g := DefaultGeometry()
	r := testRand(25)
	nodes := newTestNodes(b, r, 5)
	pkt := make([]byte, g.PacketLength)
	if _, err := buildHeader(r, g, forwardPath(nodes, &Recipient{}), pkt[:g.HeaderLength], secretsFast); err != nil {
		b.Fatal(err)
	}
	u := newHeaderUnwrapper(g, nodes[0].priv)
	var res Result
	work := make([]byte, len(pkt))
	b.ReportAllocs()
	for b.Loop() {
		copy(work, pkt)
		if err := u.unwrapHeader(work, &res); err != nil {
			b.Fatal(err)
		}
	}
}
