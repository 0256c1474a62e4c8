package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sottonet/sotto/interfaces"
)

// The suite's cases of cancellation, concurrency and restart.

// Options are optional parts of Run.
type Options struct {
	// Reopen, if set, closes s (as the plugin process stopping would) and
	// returns the store opened again on the same data: the restart case
	// checks that what was acknowledged survives.
	Reopen func(t *testing.T, s interfaces.Storage) interfaces.Storage
}

// kvConcurrentIfAbsent: of concurrent IfAbsent puts of one key exactly one
// applies (the primitive behind double-spend checks), and its value is
// the one stored.
func kvConcurrentIfAbsent(t *testing.T, s interfaces.KV) {
	const n = 8
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		winner = -1
		wins   int
	)
	for i := range n {
		wg.Go(func() {
			e := kv("token", fmt.Sprint("spender ", i))
			e.IfAbsent = true
			r, err := s.KVPut(ctx(t), &interfaces.KVPutRequest{Namespace: "race", Entries: []interfaces.KVEntry{e}})
			if err != nil || len(r.Applied) != 1 {
				t.Errorf("KVPut: %+v, %v", r, err)
				return
			}
			if r.Applied[0] {
				mu.Lock()
				winner, wins = i, wins+1
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d concurrent IfAbsent puts of one key: %d applied, want exactly 1", n, wins)
	}
	if vals, _ := get(t, s, "race", "token"); string(vals[0]) != fmt.Sprint("spender ", winner) {
		t.Errorf("stored %q, but the put that applied was spender %d's", vals[0], winner)
	}
}

// cancelledCalls: a call whose context is already cancelled fails with the
// context's error (or completes, if the store finished first), a
// cancelled KV batch is all or nothing, and the store is unharmed.
func cancelledCalls(t *testing.T, s interfaces.Storage) {
	c, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: err = %v, want nil or one wrapping context.Canceled", op, err)
		}
	}
	_, err := s.KVPut(c, &interfaces.KVPutRequest{Namespace: "cancel", Entries: []interfaces.KVEntry{kv("a", "1"), kv("b", "2")}})
	check("KVPut", err)
	if _, found := get(t, s, "cancel", "a", "b"); found[0] != found[1] {
		t.Errorf("a cancelled KVPut of two entries stored one of them: found = %v", found)
	}
	_, err = s.AppendMailbox(c, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mbox(40), "x"), msg(mbox(40), "y")}})
	check("AppendMailbox", err)
	if n := len(list(t, s, mbox(40), 0, 0)); n != 0 && n != 2 {
		t.Errorf("a cancelled append of two messages stored %d of them", n)
	}
	_, err = s.InsertReplayTags(c, &interfaces.InsertReplayTagsRequest{Epoch: 40, Tags: []interfaces.ReplayTag{tag(40, 1)}})
	check("InsertReplayTags", err)
	_, err = s.FetchMailbox(c, &interfaces.FetchMailboxRequest{Mailbox: mbox(40)})
	check("FetchMailbox", err)
	// Unharmed: the same calls work with a live context.
	put(t, s, "cancel", kv("a", "1"), kv("b", "2"))
	if vals, _ := get(t, s, "cancel", "a", "b"); string(vals[0]) != "1" || string(vals[1]) != "2" {
		t.Errorf("after cancelled calls: values %q", vals)
	}
	mustAppend(t, s, msg(mbox(41), "z"))
}

// restarted: what a store acknowledged survives a restart: messages (and
// acks), KV entries, replay tags; and IDs keep growing.
func restarted(t *testing.T, s interfaces.Storage, reopen func(t *testing.T, s interfaces.Storage) interfaces.Storage) {
	ids := mustAppend(t, s, msg(mbox(50), "kept"), msg(mbox(50), "acked"))
	if _, err := s.AckMailbox(ctx(t), &interfaces.AckMailboxRequest{Mailbox: mbox(50), IDs: ids[1:]}); err != nil {
		t.Fatal(err)
	}
	put(t, s, "durable", kv("k", "v"))
	if seen := insert(t, s, 50, tag(50, 1)); !equalBools(seen, []bool{false}) {
		t.Fatalf("a new replay tag was reported seen: %v", seen)
	}
	s = reopen(t, s)
	es := fetch(t, s, &interfaces.FetchMailboxRequest{Mailbox: mbox(50)})
	if len(es) != 1 || es[0].ID != ids[0] || string(es[0].Payload) != "kept" {
		t.Errorf("after a restart the mailbox holds %v, want only the unacknowledged message %d", ids, ids[0])
	}
	if vals, found := get(t, s, "durable", "k"); !found[0] || string(vals[0]) != "v" {
		t.Errorf("after a restart KV k = %q (found %v), want v", vals[0], found[0])
	}
	if seen := insert(t, s, 50, tag(50, 1)); !equalBools(seen, []bool{true}) {
		t.Errorf("after a restart a replay tag inserted before it is new again: a replay window reopened")
	}
	if next := mustAppend(t, s, msg(mbox(50), "after")); next[0] <= ids[1] {
		t.Errorf("after a restart append gave ID %d, not above the %d given before", next[0], ids[1])
	}
}
