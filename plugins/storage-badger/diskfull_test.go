package storagebadger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/plugintest"
)

// A store whose filesystem fills up. As root the test mounts a 96 MiB
// tmpfs of its own (skipped otherwise, with a message), opens the store on
// it with an 8 MiB memtable (min_free_bytes 48 MiB by default), appends
// until a filler file leaves less than that free, and then:
//   - appends, KV puts and replay tags are refused with ErrDiskFull (which
//     wraps ErrUnavailable, so the node answers "retry", not "bad input"),
//     never a crash (without the check Badger's mapped log dies of SIGBUS
//     on a full tmpfs: seen while writing this test);
//   - nothing refused is stored, and everything acknowledged before is
//     still there (listed, payloads intact);
//   - acks still run, to give space back;
//   - once the filler is removed, appends are taken again.
func TestDiskFullRefusesWritesAndRecovers(t *testing.T) {
	mnt := plugintest.SmallDisk(t, "96m")
	cfg := DefaultConfig(filepath.Join(mnt, "badger"))
	cfg.MemTableBytes, cfg.MaxValueBytes = 8<<20, 64<<10
	s := openTest(t, cfg)
	ctx := context.Background()
	mb := interfaces.MailboxID{7}
	appendOne := func(i int) error {
		_, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{
			{Mailbox: mb, Payload: fmt.Appendf(make([]byte, 0, 32<<10), "message %d %0*d", i, 30<<10, 0), Lifetime: time.Hour}}})
		return err
	}
	acked := 0
	for ; acked < 100; acked++ {
		if err := appendOne(acked); err != nil {
			t.Fatalf("append %d with space free: %v", acked, err)
		}
	}
	// Fill the filesystem to 40 MiB free: under the 48 MiB kept.
	free, err := freeBytes(mnt)
	if err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, int(free)-40<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := 0
	for i := range 20 {
		err := appendOne(1000 + i)
		if !errors.Is(err, ErrDiskFull) || !errors.Is(err, interfaces.ErrUnavailable) {
			t.Fatalf("append on a full disk: err = %v, want ErrDiskFull wrapping ErrUnavailable", err)
		}
		refused++
	}
	if _, err := s.KVPut(ctx, &interfaces.KVPutRequest{Namespace: "n", Entries: []interfaces.KVEntry{{Key: []byte("k"), Value: []byte("v")}}}); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("KV put on a full disk: %v", err)
	}
	if _, err := s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: 1, Tags: []interfaces.ReplayTag{{1}}}); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("replay tags on a full disk: %v", err)
	}
	list, err := s.ListMailbox(ctx, &interfaces.ListMailboxRequest{Mailbox: mb, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Entries) != acked {
		t.Fatalf("%d messages listed on the full disk, %d were acknowledged", len(list.Entries), acked)
	}
	got, err := s.FetchMailbox(ctx, &interfaces.FetchMailboxRequest{Mailbox: mb, Limit: 3})
	if err != nil || len(got.Entries) != 3 {
		t.Fatalf("fetch on the full disk: %d entries, %v", len(got.Entries), err)
	}
	for i, e := range got.Entries {
		if want := fmt.Sprintf("message %d ", i); string(e.Payload[:len(want)]) != want {
			t.Fatalf("entry %d holds %q", i, e.Payload[:20])
		}
	}
	if _, err := s.AckMailbox(ctx, &interfaces.AckMailboxRequest{Mailbox: mb, IDs: []uint64{got.Entries[0].ID}}); err != nil {
		t.Fatalf("an ack on the full disk: %v", err)
	}
	acked--
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := appendOne(2000 + i); err != nil {
			t.Fatalf("append %d after space returned: %v", i, err)
		}
		acked++
	}
	list, err = s.ListMailbox(ctx, &interfaces.ListMailboxRequest{Mailbox: mb, Limit: 1000})
	if err != nil || len(list.Entries) != acked {
		t.Fatalf("%d messages listed after recovery (%v), want %d", len(list.Entries), err, acked)
	}
	t.Logf("acknowledged 110, refused %d appends (+1 KV put, +1 replay batch) with the disk full, acked 1 on it, %d held after recovery, none of the refused", refused, acked)
}
