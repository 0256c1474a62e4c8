//go:build !(js && wasm)

package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/client/p2p"
)

// A whole program: connect to a provider, hand out a contact, send a
// message, and receive. (Not run: it needs a provider at the address.)
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	// The client's state lives in one owner-only file, written atomically
	// on every change and locked while in use: its identity, the epoch
	// clock it learns, its contacts' keys, messages not yet delivered or
	// not yet taken. A restarted program carries on from it.
	store, err := client.OpenFileStore("alice.state")
	if err != nil {
		log.Fatal(err) // client.ErrLocked: another process runs on it
	}
	defer store.Close()

	// One call: the provider's key comes from its address, the epoch
	// clock from the network (the provider's current document). The next
	// run may pass "": the address is in the state.
	c, err := p2p.Connect(ctx, "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK",
		client.Config{Store: store})
	if err != nil {
		log.Fatal(err) // client.ErrWrongClock, or the provider cannot be reached now
	}
	defer c.Close()
	go func() {
		// Run sends the cover traffic, fetches, retries; it rides out
		// provider outages (c.Connection, Config.OnEvent report them).
		if err := c.Run(ctx); err != nil {
			log.Fatal(err)
		}
	}()

	me, err := c.NewContact(ctx, client.ContactOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("my contact:", me)

	if len(os.Args) > 1 {
		to, err := client.ParseContact(os.Args[1])
		if err != nil {
			log.Fatal(err)
		}
		// In the state file before Send returns: a crash right after
		// loses nothing, the next run sends it.
		id, err := c.Send(ctx, to, []byte("hello"))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("sending", id) // c.Status(id), Config.OnStatus: acked, delivered or failed
	}

	// A message stays in the state until Done: a crash between the two
	// hands it out again, never loses it.
	for {
		m, err := c.Receive(ctx)
		if errors.Is(err, context.Canceled) || errors.Is(err, client.ErrClosed) {
			return
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", m.Body)
		if err := c.Done(m.ID); err != nil {
			log.Print(err)
		}
	}
}
