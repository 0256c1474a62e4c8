package sphinx_test

import (
	"crypto/rand"
	"fmt"

	"github.com/sottonet/sotto/core/sphinx"
)

func ExampleNewPacket() {
	g := sphinx.DefaultGeometry()

	// Three nodes; in a network their keys come from the PKI document.
	var path []sphinx.PathHop
	var keys []*sphinx.PrivateKey
	for i := range 3 {
		k, err := sphinx.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		keys = append(keys, k)
		hop := sphinx.PathHop{ID: [32]byte{byte(i)}, PublicKey: k.PublicKey()}
		if i < 2 {
			hop.Commands = []sphinx.Command{&sphinx.NodeDelay{Delay: 250}}
		} else {
			hop.Commands = []sphinx.Command{&sphinx.MailboxDelivery{Mailbox: [16]byte{1}, Lifetime: 86400}}
		}
		path = append(path, hop)
	}
	payload := make([]byte, g.ForwardPayloadLength)
	copy(payload, "hello")
	pkt, err := sphinx.NewPacket(rand.Reader, g, path, payload)
	if err != nil {
		panic(err)
	}

	// Each node unwraps in place with its own reusable Unwrapper.
	var res sphinx.Result
	for i, k := range keys {
		if err := sphinx.NewUnwrapper(g, k).Unwrap(pkt, &res); err != nil {
			panic(err)
		}
		if res.Commands.NextHop != nil {
			fmt.Printf("hop %d: forward to node %d\n", i, res.Commands.NextHop.ID[0])
		}
	}
	mb := res.Commands.List[0].(*sphinx.MailboxDelivery)
	fmt.Printf("store %q in mailbox %x for %d s\n", res.Payload[:5], mb.Mailbox[:1], mb.Lifetime)
	// Output:
	// hop 0: forward to node 1
	// hop 1: forward to node 2
	// store "hello" in mailbox 01 for 86400 s
}
