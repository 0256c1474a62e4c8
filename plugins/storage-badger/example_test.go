package storagebadger_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/sottonet/sotto/interfaces"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

func Example() {
	dir, err := os.MkdirTemp("", "storage-badger-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The same JSON a node passes to the plugin process.
	cfg, err := storagebadger.ParseConfig([]byte(`{"dir": "` + dir + `"}`))
	if err != nil {
		log.Fatal(err)
	}
	s, err := storagebadger.Open(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	var alice interfaces.MailboxID
	resp, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{
		{Mailbox: alice, Payload: []byte("hello"), Lifetime: 24 * time.Hour},
		{Mailbox: alice, Payload: []byte("again"), Lifetime: 24 * time.Hour},
	}})
	if err != nil {
		log.Fatal(err)
	}
	// A new mailbox's first ID comes from the clock; the next ones grow
	// by one.
	first := resp.IDs[0]
	fmt.Println("IDs: first, first +", resp.IDs[1]-first)

	got, err := s.FetchMailbox(ctx, &interfaces.FetchMailboxRequest{Mailbox: alice})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range got.Entries {
		fmt.Printf("first + %d: %s\n", e.ID-first, e.Payload)
	}

	seen, err := s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{
		Epoch: 7, Tags: []interfaces.ReplayTag{{1}, {2}, {1}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("replayed:", seen.Seen)
	// Output:
	// IDs: first, first + 1
	// first + 0: hello
	// first + 1: again
	// replayed: [false false true]
}
