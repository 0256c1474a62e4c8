//go:build !(js && wasm)

package p2p_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log"
	"time"

	"github.com/sottonet/sotto/client/p2p"
	"github.com/sottonet/sotto/core/clientproto"
)

// A client dials its provider, takes the PKI document of an epoch and
// reads its own mailbox. (Not run: it needs a provider at the address.)
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, err := p2p.ParseProviderAddr("/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK")
	if err != nil {
		log.Fatal(err)
	}
	_, identity, _ := ed25519.GenerateKey(rand.Reader) // a client keeps its identity
	conn, err := p2p.Dial(ctx, p2p.Options{Identity: identity, Provider: addr})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	doc, err := conn.Document(ctx, 1234)
	if errors.Is(err, clientproto.ErrNoDocument) {
		log.Print("the provider has no document for that epoch yet")
	} else if err != nil {
		log.Fatal(err)
	}
	_ = doc // verify with pkidoc.ParseDocument

	msgs, err := conn.Fetch(ctx, clientproto.MailboxRef{}, 0, 0) // own mailbox
	if err != nil {
		log.Fatal(err)
	}
	var ids []uint64
	for _, m := range msgs {
		ids = append(ids, m.ID) // ... handle m.StoredMessage ...
	}
	if err := conn.Ack(ctx, clientproto.MailboxRef{}, ids); err != nil {
		log.Fatal(err)
	}
}
