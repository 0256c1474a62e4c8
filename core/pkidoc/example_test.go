package pkidoc_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sottonet/sotto/core/pkidoc"
)

// A node signs its descriptor; any member parses and verifies it, and
// assembles the epoch's document, whose hash members compare.
func ExampleSignDescriptor() {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)) // use a real random key
	d := &pkidoc.Descriptor{
		Network:  "example",
		Epoch:    42,
		Identity: key.Public().(ed25519.PublicKey),
		PeerID:   pkidoc.PeerIDOf(key.Public().(ed25519.PublicKey)),
		Addrs:    [][]byte{{0x04, 127, 0, 0, 1, 0x06, 0x1f, 0x90}}, // /ip4/127.0.0.1/tcp/8080
		Role:     pkidoc.RoleMix,
		// SphinxKeys: X25519 public keys for epochs 42, 43 and 44.
	}
	signed, err := pkidoc.SignDescriptor(d, key)
	if err != nil {
		panic(err)
	}
	got, err := pkidoc.ParseSignedDescriptor(signed.Raw)
	fmt.Println("verifies:", err == nil, "epoch:", got.Descriptor.Epoch, "role:", got.Descriptor.Role)

	params := pkidoc.NetworkParams{Hops: 3, PayloadLen: 2048, Layers: 3, Mu: 2,
		LambdaP: 1, LambdaL: 1, LambdaD: 1, LambdaM: 1, EpochPeriod: 20 * time.Minute,
		Genesis: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), EpochGrace: 2 * time.Minute}
	doc, err := pkidoc.NewDocument("example", 42, params, []*pkidoc.SignedDescriptor{got})
	if err != nil {
		panic(err)
	}
	h, _ := doc.Hash()
	fmt.Printf("document of %d node(s), layer sizes %d/%d/%d, hash %x...\n",
		len(doc.Nodes), len(doc.Layers()[0]), len(doc.Layers()[1]), len(doc.Layers()[2]), h[:4])
	// Output:
	// verifies: true epoch: 42 role: mix
	// document of 1 node(s), layer sizes 1/0/0, hash 3b7fea48...
}

// The layer assignment, worked through by hand for docs/SPEC.md: each
// mix's rank key is SHA-256("sotto layer\0" ‖ network (raw bytes, no
// length) ‖ epoch (u64 big-endian) ‖ identity); mixes sorted by ascending
// key are dealt round-robin, the i-th to layer i mod Layers.
func ExampleDocument_Layers() {
	var nodes []*pkidoc.SignedDescriptor
	for seed := byte(1); seed <= 4; seed++ {
		key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
		id := key.Public().(ed25519.PublicKey)
		sd, err := pkidoc.SignDescriptor(&pkidoc.Descriptor{Network: "example", Epoch: 42, Identity: id,
			PeerID: pkidoc.PeerIDOf(id), Addrs: [][]byte{{0x04, 127, 0, 0, 1, 0x06, 0x1f, 0x90}}, Role: pkidoc.RoleMix}, key)
		if err != nil {
			panic(err)
		}
		h := sha256.New()
		h.Write([]byte("sotto layer\x00"))
		h.Write([]byte("example"))
		h.Write(binary.BigEndian.AppendUint64(nil, 42))
		h.Write(id)
		fmt.Printf("seed %d: identity %x… rank key %x…\n", seed, id[:4], h.Sum(nil)[:4])
		nodes = append(nodes, sd)
	}
	params := pkidoc.NetworkParams{Hops: 3, PayloadLen: 2048, Layers: 3, Mu: 2, EpochPeriod: time.Minute}
	doc, err := pkidoc.NewDocument("example", 42, params, nodes)
	if err != nil {
		panic(err)
	}
	for i, layer := range doc.Layers() {
		fmt.Printf("layer %d:", i)
		for _, sd := range layer {
			fmt.Printf(" %x…", sd.Descriptor.Identity[:4])
		}
		fmt.Println()
	}
	// Output:
	// seed 1: identity 8a88e3dd… rank key f0d8b7c6…
	// seed 2: identity 8139770e… rank key 99db9178…
	// seed 3: identity ed4928c6… rank key 8b410def…
	// seed 4: identity ca93ac17… rank key 829376de…
	// layer 0: ca93ac17… 8a88e3dd…
	// layer 1: ed4928c6…
	// layer 2: 8139770e…
}
