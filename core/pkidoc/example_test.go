package pkidoc_test

import (
	"crypto/ed25519"
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
		LambdaP: 1, LambdaL: 1, LambdaD: 1, LambdaM: 1, EpochPeriod: 20 * time.Minute}
	doc, err := pkidoc.NewDocument("example", 42, params, []*pkidoc.SignedDescriptor{got})
	if err != nil {
		panic(err)
	}
	h, _ := doc.Hash()
	fmt.Printf("document of %d node(s), layer sizes %d/%d/%d, hash %x...\n",
		len(doc.Nodes), len(doc.Layers()[0]), len(doc.Layers()[1]), len(doc.Layers()[2]), h[:4])
	// Output:
	// verifies: true epoch: 42 role: mix
	// document of 1 node(s), layer sizes 1/0/0, hash f8e9e73b...
}
