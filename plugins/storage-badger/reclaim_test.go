package storagebadger

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/sottonet/sotto/interfaces"
)

// counters is how many mailbox ID counters the store holds.
func counters(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{spaceCounter}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(opts.Prefix); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func ackAll(t *testing.T, s *Store, mb interfaces.MailboxID, ids []uint64) {
	t.Helper()
	if _, err := s.AckMailbox(context.Background(), &interfaces.AckMailboxRequest{Mailbox: mb, IDs: ids}); err != nil {
		t.Fatal(err)
	}
}

// clock makes the store's clock read *now.
func clock(s *Store, now *time.Time) { s.idClock = func() time.Time { return *now } }

func TestEmptiedMailboxesAreReclaimedWithoutReusingIDs(t *testing.T) {
	t.Run("an ack that empties a mailbox deletes its counter, and its next ID is greater", func(t *testing.T) {
		s := newStore(t)
		now := time.Now()
		clock(s, &now)
		ids := appendOK(t, s, msg(mbox(1), "a"), msg(mbox(1), "b"))
		if ids[1] != ids[0]+1 {
			t.Fatalf("IDs %v do not grow by one", ids)
		}
		now = now.Add(time.Second)
		ackAll(t, s, mbox(1), ids[:1])
		if got := counters(t, s); got != 1 {
			t.Fatalf("%d counters after acking one of two messages, want 1", got)
		}
		ackAll(t, s, mbox(1), ids[1:])
		if got := counters(t, s); got != 0 {
			t.Fatalf("%d counters after the mailbox was emptied, want 0", got)
		}
		next := appendOK(t, s, msg(mbox(1), "c"))
		if next[0] <= ids[1] {
			t.Fatalf("after the reclaim the next ID is %d, not above the last one handed out (%d)", next[0], ids[1])
		}
	})
	t.Run("a counter whose last ID is in the current second is kept", func(t *testing.T) {
		s := newStore(t)
		now := time.Now()
		clock(s, &now)
		ids := appendOK(t, s, msg(mbox(2), "a"))
		ackAll(t, s, mbox(2), ids)
		if got := counters(t, s); got != 1 {
			t.Fatalf("%d counters, want the one kept", got)
		}
		if next := appendOK(t, s, msg(mbox(2), "b")); next[0] != ids[0]+1 {
			t.Fatalf("next ID %d, want %d", next[0], ids[0]+1)
		}
	})
	t.Run("after the clock went back, IDs still grow", func(t *testing.T) {
		s := newStore(t)
		now := time.Now()
		clock(s, &now)
		ids := appendOK(t, s, msg(mbox(3), "a"), msg(mbox(3), "b"))
		now = now.Add(time.Second)
		ackAll(t, s, mbox(3), ids)
		if got := counters(t, s); got != 0 {
			t.Fatalf("%d counters, want 0", got)
		}
		now = now.Add(-time.Hour)
		for _, mb := range []interfaces.MailboxID{mbox(3), mbox(4)} {
			if next := appendOK(t, s, msg(mb, "c")); next[0] <= ids[1] {
				t.Fatalf("mailbox %x: next ID %d, not above the reclaimed %d", mb[:1], next[0], ids[1])
			}
		}
	})
	t.Run("the floor and the counters survive a reopen", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(testConfig(dir))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		clock(s, &now)
		ids := appendOK(t, s, msg(mbox(5), "a"))
		now = now.Add(time.Second)
		ackAll(t, s, mbox(5), ids)
		kept := appendOK(t, s, msg(mbox(6), "a"))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openTest(t, testConfig(dir))
		now = now.Add(-time.Hour)
		clock(s, &now)
		if next := appendOK(t, s, msg(mbox(5), "b")); next[0] <= ids[0] {
			t.Fatalf("reclaimed mailbox after a reopen: next ID %d, not above %d", next[0], ids[0])
		}
		if next := appendOK(t, s, msg(mbox(6), "b")); next[0] != kept[0]+1 {
			t.Fatalf("kept mailbox after a reopen: next ID %d, want %d", next[0], kept[0]+1)
		}
	})
}

func TestExpiredMailboxesAreReclaimedBySweep(t *testing.T) {
	s := newStore(t)
	s.idClock = time.Now
	for i := range 300 { // more than one reclaim batch
		mb := mbox(byte(i))
		mb[1] = byte(i >> 8)
		appendOK(t, s, interfaces.MailboxMessage{Mailbox: mb, Payload: []byte("x"), Lifetime: time.Millisecond})
	}
	live := appendOK(t, s, msg(mbox(9), "still here"))
	// Badger expires whole seconds, by the real clock.
	deadline := time.Now().Add(10 * time.Second)
	for len(fetchAll(t, s, mbox(0))) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("messages with a lifetime of 1 ms still there after 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		n, err := s.ReclaimMailboxes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if counters(t, s) == 1 {
			break
		}
		if n == 0 && time.Now().After(deadline) {
			t.Fatalf("%d counters left, want 1", counters(t, s))
		}
		time.Sleep(100 * time.Millisecond) // the last IDs must lie in an earlier second
	}
	if got := fetchAll(t, s, mbox(9)); len(got) != 1 || got[0].ID != live[0] {
		t.Fatalf("the mailbox with a live message holds %v", got)
	}
}

func TestDatabaseFilesAreTheOwnersAlone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Open(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		appendOK(t, s, msg(mbox(byte(i)), string(make([]byte, 4096))))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want no group or other bits", e.Name(), fi.Mode().Perm())
		}
	}
	if len(entries) == 0 {
		t.Fatal("no files in the database directory")
	}
}
