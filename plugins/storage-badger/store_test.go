package storagebadger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir) // never returns: appends until killed
	}
	if os.Getenv(servePluginEnv) == "1" {
		interfaces.Serve(Plugin())
		os.Exit(0)
	}
	// Badger's ristretto cache and its own closers must all stop on Close.
	goleak.VerifyTestMain(m)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testConfig keeps memory small: tests open many databases at once on a
// shared machine. SyncWrites is off unless a test is about durability;
// reopen tests close the store cleanly, which flushes either way.
func testConfig(dir string) Config {
	c := DefaultConfig(dir)
	c.SyncWrites = false
	c.MemTableBytes = 8 << 20
	c.CacheBytes = 1 << 20
	c.Logger = quietLogger()
	return c
}

func openTest(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// newStore opens a store in a temp dir whose ID clock reads the Unix
// epoch, so that a new mailbox's IDs start at 1 (firstID) and tests can
// name them; reclaim_test.go sets the clock where it matters.
func newStore(t *testing.T) *Store {
	t.Helper()
	s := openTest(t, testConfig(t.TempDir()))
	s.idClock = func() time.Time { return time.Unix(0, 0) }
	return s
}

func mbox(b byte) interfaces.MailboxID { var m interfaces.MailboxID; m[0] = b; m[31] = b; return m }
func tag(b byte) interfaces.ReplayTag  { var r interfaces.ReplayTag; r[0] = b; r[31] = ^b; return r }

func appendOK(t *testing.T, s *Store, msgs ...interfaces.MailboxMessage) []uint64 {
	t.Helper()
	resp, err := s.AppendMailbox(context.Background(), &interfaces.AppendMailboxRequest{Messages: msgs})
	if err != nil {
		t.Fatalf("AppendMailbox: %v", err)
	}
	if len(resp.IDs) != len(msgs) {
		t.Fatalf("AppendMailbox gave %d IDs for %d messages", len(resp.IDs), len(msgs))
	}
	return resp.IDs
}

func msg(mb interfaces.MailboxID, payload string) interfaces.MailboxMessage {
	return interfaces.MailboxMessage{Mailbox: mb, Payload: []byte(payload), Lifetime: time.Hour}
}

func fetchAll(t *testing.T, s *Store, mb interfaces.MailboxID) []interfaces.MailboxEntry {
	t.Helper()
	resp, err := s.FetchMailbox(context.Background(), &interfaces.FetchMailboxRequest{Mailbox: mb, Limit: maxMailboxLimit})
	if err != nil {
		t.Fatalf("FetchMailbox: %v", err)
	}
	return resp.Entries
}

func payloads(es []interfaces.MailboxEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, string(e.Payload))
	}
	return out
}

func ids(es []interfaces.MailboxEntry) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func TestAppendAssignsGrowingIDsPerMailbox(t *testing.T) {
	s := newStore(t)
	now := time.Now()
	clock(s, &now)
	first := uint64(now.Unix()) << idTimeShift // a new mailbox starts at its second
	a, b := mbox(1), mbox(2)
	got := appendOK(t, s, msg(a, "a1"), msg(b, "b1"), msg(a, "a2"))
	if want := []uint64{first, first, first + 1}; !slices.Equal(got, want) {
		t.Fatalf("first batch IDs = %v, want %v", got, want)
	}
	got = appendOK(t, s, msg(a, "a3"))
	if want := []uint64{first + 2}; !slices.Equal(got, want) {
		t.Fatalf("second batch IDs = %v, want %v", got, want)
	}
	if p := payloads(fetchAll(t, s, a)); !slices.Equal(p, []string{"a1", "a2", "a3"}) {
		t.Fatalf("mailbox a holds %q", p)
	}
	if p := payloads(fetchAll(t, s, b)); !slices.Equal(p, []string{"b1"}) {
		t.Fatalf("mailbox b holds %q", p)
	}
	// IDs are not reused after an ack, even of the newest message.
	if _, err := s.AckMailbox(context.Background(), &interfaces.AckMailboxRequest{Mailbox: a, IDs: []uint64{3}}); err != nil {
		t.Fatal(err)
	}
	if got := appendOK(t, s, msg(a, "a4")); got[0] != first+3 {
		t.Fatalf("ID after acking the newest = %d, want %d", got[0], first+3)
	}
	// An empty batch is a no-op, and an empty payload is stored as such.
	if got := appendOK(t, s); len(got) != 0 {
		t.Fatalf("empty batch gave IDs %v", got)
	}
	appendOK(t, s, msg(b, ""))
	es := fetchAll(t, s, b)
	if len(es) != 2 || es[1].Size != 0 || es[1].Payload == nil {
		t.Fatalf("empty payload came back as %+v", es)
	}
}

func TestFetchAndListHonourAfterLimitAndMaxBytes(t *testing.T) {
	s := newStore(t)
	mb := mbox(7)
	var msgs []interfaces.MailboxMessage
	for i := range 10 {
		msgs = append(msgs, msg(mb, fmt.Sprintf("%0*d", 10*(i+1), i))) // payload i has 10(i+1) bytes
	}
	appendOK(t, s, msgs...)
	ctx := context.Background()
	tests := []struct {
		name    string
		req     interfaces.FetchMailboxRequest
		wantIDs []uint64
	}{
		{"no limits returns everything in ID order", interfaces.FetchMailboxRequest{}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"after skips IDs up to and including it", interfaces.FetchMailboxRequest{After: 7}, []uint64{8, 9, 10}},
		{"limit cuts the answer", interfaces.FetchMailboxRequest{After: 2, Limit: 3}, []uint64{3, 4, 5}},
		{"max bytes stops before the message that would exceed it", interfaces.FetchMailboxRequest{MaxBytes: 60}, []uint64{1, 2, 3}},
		{"max bytes exactly reached keeps the last message", interfaces.FetchMailboxRequest{MaxBytes: 30}, []uint64{1, 2}},
		{"max bytes below the first message still returns one", interfaces.FetchMailboxRequest{After: 5, MaxBytes: 1}, []uint64{6}},
		{"after the last ID returns nothing", interfaces.FetchMailboxRequest{After: 10}, nil},
		{"after the largest uint64 returns nothing", interfaces.FetchMailboxRequest{After: ^uint64(0)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.Mailbox = mb
			resp, err := s.FetchMailbox(ctx, &req)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(resp.Entries); !slices.Equal(got, tt.wantIDs) {
				t.Fatalf("fetched IDs %v, want %v", got, tt.wantIDs)
			}
			for _, e := range resp.Entries {
				if e.Size != 10*int(e.ID) || len(e.Payload) != e.Size {
					t.Fatalf("entry %d: size %d, payload %d bytes, want %d", e.ID, e.Size, len(e.Payload), 10*e.ID)
				}
			}
			lresp, err := s.ListMailbox(ctx, &interfaces.ListMailboxRequest{Mailbox: mb, After: req.After, Limit: req.Limit})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range lresp.Entries {
				if e.Payload != nil || e.Size != 10*int(e.ID) || e.Expires.IsZero() {
					t.Fatalf("listed entry %+v: want no payload, size %d, an expiry", e, 10*e.ID)
				}
			}
		})
	}
	resp, err := s.ListMailbox(ctx, &interfaces.ListMailboxRequest{Mailbox: mbox(8)})
	if err != nil || resp.Entries == nil || len(resp.Entries) != 0 {
		t.Fatalf("listing an unknown mailbox = %+v, %v; want an empty list", resp, err)
	}
}

func TestAckDeletesIdempotently(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mb := mbox(3)
	appendOK(t, s, msg(mb, "1"), msg(mb, "2"), msg(mb, "3"))
	tests := []struct {
		name        string
		ids         []uint64
		wantDeleted int
		wantLeft    []uint64
	}{
		{"acking two existing IDs deletes them", []uint64{1, 3}, 2, []uint64{2}},
		{"acking them again deletes nothing and is no error", []uint64{1, 3}, 0, []uint64{2}},
		{"an ID named twice counts once", []uint64{2, 2, 99}, 1, nil},
		{"an empty ack is a no-op", nil, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := s.AckMailbox(ctx, &interfaces.AckMailboxRequest{Mailbox: mb, IDs: tt.ids})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Deleted != tt.wantDeleted {
				t.Fatalf("Deleted = %d, want %d", resp.Deleted, tt.wantDeleted)
			}
			if left := ids(fetchAll(t, s, mb)); !slices.Equal(left, tt.wantLeft) {
				t.Fatalf("left %v, want %v", left, tt.wantLeft)
			}
		})
	}
}

func TestExpiryIsRoundedUpToBadgerSeconds(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	before := time.Now()
	lifetimes := []time.Duration{time.Millisecond, 1500 * time.Millisecond, time.Hour, 100 * 365 * 24 * time.Hour}
	var msgs []interfaces.MailboxMessage
	for _, l := range lifetimes {
		msgs = append(msgs, interfaces.MailboxMessage{Mailbox: mbox(4), Payload: []byte("x"), Lifetime: l})
	}
	appendOK(t, s, msgs...)
	after := time.Now()
	resp, err := s.ListMailbox(ctx, &interfaces.ListMailboxRequest{Mailbox: mbox(4)})
	if err != nil {
		t.Fatal(err)
	}
	// The millisecond message may already be gone; check those listed.
	for _, e := range resp.Entries {
		l := lifetimes[e.ID-1]
		lo, hi := before.Add(l).Truncate(time.Second), after.Add(l).Add(time.Second)
		if e.Expires.Before(lo) || e.Expires.After(hi) {
			t.Errorf("lifetime %v: expires %v, want within [%v, %v]", l, e.Expires, lo, hi)
		}
	}
	if got := ids(resp.Entries); len(got) < 3 || got[len(got)-1] != 4 {
		t.Fatalf("listed %v, want at least the three long-lived messages", got)
	}
	if got := expiresAt(time.Unix(100, 0), time.Second); got != 101 {
		t.Errorf("expiresAt(100s, 1s) = %d, want 101", got)
	}
	if got := expiresAt(time.Unix(100, 1), time.Second); got != 102 {
		t.Errorf("expiresAt(100s+1ns, 1s) = %d, want 102 (rounded up)", got)
	}
}

// TestMessagesAndKeysReallyExpire is the one test that waits for Badger's
// clock: a 1 s lifetime, then polling for up to 15 s.
func TestMessagesAndKeysReallyExpire(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a real TTL")
	}
	s := newStore(t)
	ctx := context.Background()
	mb := mbox(5)
	appendOK(t, s, interfaces.MailboxMessage{Mailbox: mb, Payload: []byte("short"), Lifetime: time.Second}, msg(mb, "long"))
	if _, err := s.KVPut(ctx, &interfaces.KVPutRequest{Namespace: "t", Entries: []interfaces.KVEntry{
		{Key: []byte("short"), Value: []byte("v"), Lifetime: time.Second},
		{Key: []byte("forever"), Value: []byte("v")},
	}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := payloads(fetchAll(t, s, mb))
		kv, err := s.KVGet(ctx, &interfaces.KVGetRequest{Namespace: "t", Keys: [][]byte{[]byte("short"), []byte("forever")}})
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(got, []string{"long"}) && !kv.Found[0] && kv.Found[1] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s mailbox holds %q and KV found %v", got, kv.Found)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// An expired key counts as absent for IfAbsent.
	resp, err := s.KVPut(ctx, &interfaces.KVPutRequest{Namespace: "t", Entries: []interfaces.KVEntry{{Key: []byte("short"), Value: []byte("w"), IfAbsent: true}}})
	if err != nil || !resp.Applied[0] {
		t.Fatalf("IfAbsent over an expired key: %+v, %v; want applied", resp, err)
	}
}

func TestReplayTags(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	insert := func(t *testing.T, epoch uint64, tags ...interfaces.ReplayTag) []bool {
		t.Helper()
		resp, err := s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: epoch, Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Seen
	}
	drop := func(t *testing.T, epoch uint64) {
		t.Helper()
		if _, err := s.DropReplayEpoch(ctx, &interfaces.DropReplayEpochRequest{Epoch: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name  string
		do    func(t *testing.T) []bool
		wantS []bool
	}{
		{"new tags are not seen", func(t *testing.T) []bool { return insert(t, 1, tag(1), tag(2)) }, []bool{false, false}},
		{"a tag repeated in one batch is seen from its second occurrence", func(t *testing.T) []bool { return insert(t, 1, tag(3), tag(3), tag(3)) }, []bool{false, true, true}},
		{"tags of an earlier batch are seen", func(t *testing.T) []bool { return insert(t, 1, tag(2), tag(4)) }, []bool{true, false}},
		{"another epoch has its own set", func(t *testing.T) []bool { return insert(t, 2, tag(1)) }, []bool{false}},
		{"dropping epoch 1 forgets its tags", func(t *testing.T) []bool { drop(t, 1); return insert(t, 1, tag(1), tag(3)) }, []bool{false, false}},
		{"dropping epoch 1 leaves epoch 2", func(t *testing.T) []bool { drop(t, 1); return insert(t, 2, tag(1)) }, []bool{true}},
		{"dropping an unknown epoch is no error", func(t *testing.T) []bool { drop(t, 99); drop(t, 99); return insert(t, 99) }, []bool{}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if got := st.do(t); !slices.Equal(got, st.wantS) {
				t.Fatalf("seen = %v, want %v", got, st.wantS)
			}
		})
	}
}

func TestKV(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	put := func(t *testing.T, ns string, es ...interfaces.KVEntry) []bool {
		t.Helper()
		resp, err := s.KVPut(ctx, &interfaces.KVPutRequest{Namespace: ns, Entries: es})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Applied
	}
	get := func(t *testing.T, ns string, keys ...string) []string {
		t.Helper()
		var ks [][]byte
		for _, k := range keys {
			ks = append(ks, []byte(k))
		}
		resp, err := s.KVGet(ctx, &interfaces.KVGetRequest{Namespace: ns, Keys: ks})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i := range keys {
			if !resp.Found[i] {
				if resp.Values[i] != nil {
					t.Fatalf("missing key %q has value %q", keys[i], resp.Values[i])
				}
				out = append(out, "<missing>")
				continue
			}
			out = append(out, string(resp.Values[i]))
		}
		return out
	}
	kv := func(k, v string, ifAbsent bool) interfaces.KVEntry {
		return interfaces.KVEntry{Key: []byte(k), Value: []byte(v), IfAbsent: ifAbsent}
	}

	t.Run("put then get", func(t *testing.T) {
		if got := put(t, "ns", kv("k1", "v1", false), kv("k2", "", false)); !slices.Equal(got, []bool{true, true}) {
			t.Fatalf("applied %v", got)
		}
		if got := get(t, "ns", "k1", "k2", "k3"); !slices.Equal(got, []string{"v1", "", "<missing>"}) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("if absent writes only missing keys, in batch order", func(t *testing.T) {
		got := put(t, "ns", kv("k1", "x", true), kv("k9", "first", true), kv("k9", "second", true), kv("k9", "third", false))
		if !slices.Equal(got, []bool{false, true, false, true}) {
			t.Fatalf("applied %v", got)
		}
		if got := get(t, "ns", "k1", "k9"); !slices.Equal(got, []string{"v1", "third"}) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("namespaces never collide, even when namespace+key concatenate alike", func(t *testing.T) {
		put(t, "a", kv("bc", "in a", false))
		put(t, "ab", kv("c", "in ab", false))
		if got := get(t, "a", "bc", "c"); !slices.Equal(got, []string{"in a", "<missing>"}) {
			t.Fatalf("namespace a: %q", got)
		}
		if got := get(t, "ab", "c", "bc"); !slices.Equal(got, []string{"in ab", "<missing>"}) {
			t.Fatalf("namespace ab: %q", got)
		}
	})
	t.Run("delete is idempotent", func(t *testing.T) {
		for range 2 {
			if _, err := s.KVDelete(ctx, &interfaces.KVDeleteRequest{Namespace: "ns", Keys: [][]byte{[]byte("k1"), []byte("nope")}}); err != nil {
				t.Fatal(err)
			}
		}
		if got := get(t, "ns", "k1", "k2"); !slices.Equal(got, []string{"<missing>", ""}) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("a lifetime sets a Badger TTL and zero means forever", func(t *testing.T) {
		put(t, "ttl", interfaces.KVEntry{Key: []byte("h"), Value: []byte("v"), Lifetime: time.Hour}, kv("f", "v", false))
		err := s.db.View(func(txn *badgerTxn) error {
			for k, wantTTL := range map[string]bool{"h": true, "f": false} {
				item, err := txn.Get(kvKey("ttl", []byte(k)))
				if err != nil {
					return err
				}
				exp := item.ExpiresAt()
				if wantTTL != (exp != 0) {
					return fmt.Errorf("key %q: ExpiresAt %d, want TTL %v", k, exp, wantTTL)
				}
				if wantTTL && (exp < uint64(time.Now().Add(59*time.Minute).Unix()) || exp > uint64(time.Now().Add(61*time.Minute).Unix())) {
					return fmt.Errorf("key %q: ExpiresAt %d is not about an hour from now", k, exp)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("list with prefix, after and limit", func(t *testing.T) {
		for _, k := range []string{"user/a", "user/b", "user/c", "user/d", "userx", "token/1"} {
			put(t, "list", kv(k, "v", false))
		}
		put(t, "lis", kv("tuser/a", "other namespace", false))
		tests := []struct {
			name   string
			prefix string
			after  string
			limit  int
			want   []string
		}{
			{"everything in byte order", "", "", 0, []string{"token/1", "user/a", "user/b", "user/c", "user/d", "userx"}},
			{"a prefix", "user/", "", 0, []string{"user/a", "user/b", "user/c", "user/d"}},
			{"a prefix and after", "user/", "user/b", 0, []string{"user/c", "user/d"}},
			{"after a key that is not stored", "user/", "user/bb", 0, []string{"user/c", "user/d"}},
			{"after before the prefix", "user/", "a", 0, []string{"user/a", "user/b", "user/c", "user/d"}},
			{"after beyond the prefix", "user/", "zzz", 0, nil},
			{"a limit", "", "token/1", 2, []string{"user/a", "user/b"}},
			{"a prefix that matches nothing", "nothing", "", 0, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req := &interfaces.KVListRequest{Namespace: "list", Prefix: []byte(tt.prefix), Limit: tt.limit}
				if tt.after != "" {
					req.After = []byte(tt.after)
				}
				resp, err := s.KVList(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, k := range resp.Keys {
					got = append(got, string(k))
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("listed %q, want %q", got, tt.want)
				}
			})
		}
	})
}

func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mb := mbox(9)
	long := string(bytes.Repeat([]byte("n"), 65))
	tests := []struct {
		name string
		call func() error
	}{
		{"a zero mailbox lifetime", func() error {
			_, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mb, "ok"), {Mailbox: mb, Payload: []byte("x")}}})
			return err
		}},
		{"a negative mailbox lifetime", func() error {
			_, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{{Mailbox: mb, Payload: []byte("x"), Lifetime: -time.Second}}})
			return err
		}},
		{"a payload above max_value_bytes", func() error {
			_, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mb, "ok"), {Mailbox: mb, Payload: make([]byte, s.cfg.MaxValueBytes+1), Lifetime: time.Hour}}})
			return err
		}},
		{"a nil append request", func() error { _, err := s.AppendMailbox(ctx, nil); return err }},
		{"a negative list limit", func() error {
			_, err := s.ListMailbox(ctx, &interfaces.ListMailboxRequest{Mailbox: mb, Limit: -1})
			return err
		}},
		{"a negative max bytes", func() error {
			_, err := s.FetchMailbox(ctx, &interfaces.FetchMailboxRequest{Mailbox: mb, MaxBytes: -1})
			return err
		}},
		{"an empty namespace", func() error {
			_, err := s.KVPut(ctx, &interfaces.KVPutRequest{Entries: []interfaces.KVEntry{{Key: []byte("k")}}})
			return err
		}},
		{"a 65-byte namespace", func() error {
			_, err := s.KVGet(ctx, &interfaces.KVGetRequest{Namespace: long, Keys: [][]byte{[]byte("k")}})
			return err
		}},
		{"an empty key in a batch", func() error {
			_, err := s.KVPut(ctx, &interfaces.KVPutRequest{Namespace: "bad", Entries: []interfaces.KVEntry{{Key: []byte("ok"), Value: []byte("v")}, {Key: nil}}})
			return err
		}},
		{"a negative KV lifetime", func() error {
			_, err := s.KVPut(ctx, &interfaces.KVPutRequest{Namespace: "bad", Entries: []interfaces.KVEntry{{Key: []byte("ok"), Value: []byte("v")}, {Key: []byte("k"), Lifetime: -1}}})
			return err
		}},
		{"an oversized key", func() error {
			_, err := s.KVDelete(ctx, &interfaces.KVDeleteRequest{Namespace: "bad", Keys: [][]byte{make([]byte, maxKeyBytes+1)}})
			return err
		}},
		{"a negative KV list limit", func() error {
			_, err := s.KVList(ctx, &interfaces.KVListRequest{Namespace: "bad", Limit: -5})
			return err
		}},
		{"a nil replay request", func() error { _, err := s.InsertReplayTags(ctx, nil); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, interfaces.ErrInvalidArgument) {
				t.Fatalf("error = %v, want ErrInvalidArgument", err)
			}
		})
	}
	if es := fetchAll(t, s, mb); len(es) != 0 {
		t.Fatalf("refused batches left %d messages", len(es))
	}
	if got := appendOK(t, s, msg(mb, "first")); got[0] != 1 {
		t.Fatalf("refused batches advanced the ID counter: next ID %d", got[0])
	}
	resp, err := s.KVGet(ctx, &interfaces.KVGetRequest{Namespace: "bad", Keys: [][]byte{[]byte("ok")}})
	if err != nil || resp.Found[0] {
		t.Fatalf("refused KV batch left a key: %+v, %v", resp, err)
	}
}

func TestBatchTooBigForOneTransactionIsRefusedWhole(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MemTableBytes = 1 << 20 // Badger's limit is 15% of it: ~157 KB
	cfg.MaxValueBytes = 64 << 10
	s := openTest(t, cfg)
	s.idClock = func() time.Time { return time.Unix(0, 0) } // IDs from 1
	ctx := context.Background()
	mb := mbox(10)
	var msgs []interfaces.MailboxMessage
	for range 100 {
		msgs = append(msgs, interfaces.MailboxMessage{Mailbox: mb, Payload: make([]byte, 2048), Lifetime: time.Hour})
	}
	_, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: msgs})
	if !errors.Is(err, interfaces.ErrInvalidArgument) {
		t.Fatalf("100 x 2 KiB into a 1 MiB memtable: %v, want ErrInvalidArgument", err)
	}
	if es := fetchAll(t, s, mb); len(es) != 0 {
		t.Fatalf("a refused batch left %d messages", len(es))
	}
	if got := appendOK(t, s, msgs[:10]...); got[0] != 1 {
		t.Fatalf("a smaller batch then starts at ID %d, want 1", got[0])
	}
}

func TestCancelledContextWritesNothing(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	mb := mbox(11)
	calls := map[string]func() error{
		"append": func() error {
			_, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mb, "x")}})
			return err
		},
		"replay": func() error {
			_, err := s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: 1, Tags: []interfaces.ReplayTag{tag(1)}})
			return err
		},
		"kv put": func() error {
			_, err := s.KVPut(ctx, &interfaces.KVPutRequest{Namespace: "c", Entries: []interfaces.KVEntry{{Key: []byte("k")}}})
			return err
		},
		"fetch": func() error {
			_, err := s.FetchMailbox(ctx, &interfaces.FetchMailboxRequest{Mailbox: mb})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", name, err)
		}
	}
	bg := context.Background()
	if es := fetchAll(t, s, mb); len(es) != 0 {
		t.Errorf("cancelled append left %d messages", len(es))
	}
	r, err := s.InsertReplayTags(bg, &interfaces.InsertReplayTagsRequest{Epoch: 1, Tags: []interfaces.ReplayTag{tag(1)}})
	if err != nil || r.Seen[0] {
		t.Errorf("cancelled insert left the tag: %+v, %v", r, err)
	}
}

func TestReopenKeepsDataAndCounters(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	mb := mbox(12)
	cfg := testConfig(dir)
	cfg.SyncWrites = true
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.idClock = func() time.Time { return time.Unix(0, 0) } // IDs from 1
	appendOK(t, s, msg(mb, "one"), msg(mb, "two"))
	if _, err := s.AckMailbox(ctx, &interfaces.AckMailboxRequest{Mailbox: mb, IDs: []uint64{2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: 5, Tags: []interfaces.ReplayTag{tag(1)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: 6, Tags: []interfaces.ReplayTag{tag(1)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DropReplayEpoch(ctx, &interfaces.DropReplayEpochRequest{Epoch: 6}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KVPut(ctx, &interfaces.KVPutRequest{Namespace: "tokens", Entries: []interfaces.KVEntry{{Key: []byte("spent"), Value: []byte("1")}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.ListMailbox(ctx, &interfaces.ListMailboxRequest{Mailbox: mb}); !errors.Is(err, interfaces.ErrUnavailable) {
		t.Fatalf("call after Close: %v, want ErrUnavailable", err)
	}

	s = openTest(t, cfg)
	s.idClock = func() time.Time { return time.Unix(0, 0) }
	if got := payloads(fetchAll(t, s, mb)); !slices.Equal(got, []string{"one"}) {
		t.Fatalf("after reopen mailbox holds %q", got)
	}
	if got := appendOK(t, s, msg(mb, "three")); got[0] != 3 {
		t.Fatalf("after reopen the next ID is %d, want 3", got[0])
	}
	r, err := s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: 5, Tags: []interfaces.ReplayTag{tag(1)}})
	if err != nil || !r.Seen[0] {
		t.Fatalf("after reopen epoch 5 forgot its tag: %+v, %v", r, err)
	}
	r, err = s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: 6, Tags: []interfaces.ReplayTag{tag(1)}})
	if err != nil || r.Seen[0] {
		t.Fatalf("after reopen dropped epoch 6 still has its tag: %+v, %v", r, err)
	}
	kv, err := s.KVGet(ctx, &interfaces.KVGetRequest{Namespace: "tokens", Keys: [][]byte{[]byte("spent")}})
	if err != nil || !kv.Found[0] || string(kv.Values[0]) != "1" {
		t.Fatalf("after reopen KV: %+v, %v", kv, err)
	}
}

func TestConcurrentWritersNeverShareIDsOrTags(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mb := mbox(13)
	const workers, rounds = 8, 20
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		allIDs   []uint64
		newTags  = map[interfaces.ReplayTag]int{}
		applied  int
		firstErr error
	)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				resp, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mb, "a"), msg(mb, "b")}})
				rt, err2 := s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: 1, Tags: []interfaces.ReplayTag{tag(byte(r)), tag(byte(100 + w))}})
				kp, err3 := s.KVPut(ctx, &interfaces.KVPutRequest{Namespace: "spent", Entries: []interfaces.KVEntry{{Key: []byte{byte(r)}, IfAbsent: true}}})
				mu.Lock()
				if err := errors.Join(err, err2, err3); err != nil {
					firstErr = err
					mu.Unlock()
					return
				}
				allIDs = append(allIDs, resp.IDs...)
				for i, seen := range rt.Seen {
					if !seen {
						newTags[[]interfaces.ReplayTag{tag(byte(r)), tag(byte(100 + w))}[i]]++
					}
				}
				if kp.Applied[0] {
					applied++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	slices.Sort(allIDs)
	for i, id := range allIDs {
		if id != uint64(i+1) {
			t.Fatalf("IDs are not exactly 1..%d: position %d holds %d", workers*rounds*2, i, id)
		}
	}
	if len(newTags) != rounds+workers {
		t.Fatalf("%d distinct tags reported new, want %d", len(newTags), rounds+workers)
	}
	for tg, n := range newTags {
		if n != 1 {
			t.Fatalf("tag %x reported new %d times", tg[:2], n)
		}
	}
	if applied != rounds {
		t.Fatalf("IfAbsent applied %d times for %d keys", applied, rounds)
	}
}

// recordHandler keeps every record it sees.
type recordHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	comp := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "component" {
			comp = a.Value.String()
		}
		return true
	})
	h.msgs = append(h.msgs, comp+": "+r.Message)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func TestBadgerLogsGoToSlog(t *testing.T) {
	h := &recordHandler{}
	cfg := testConfig(t.TempDir())
	cfg.Logger = slog.New(h)
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	found := false
	for _, m := range h.msgs {
		if len(m) > len("badger: ") && m[:len("badger: ")] == "badger: " {
			found = true
			if m[len(m)-1] == '\n' {
				t.Errorf("message keeps Badger's newline: %q", m)
			}
		}
	}
	if !found {
		t.Fatalf("no Badger log record reached slog; got %q", h.msgs)
	}
}

// TestDropEpochWhileInserting drops epochs while other goroutines insert
// tags: Badger refuses commits during DropPrefix, and the store must make
// writers wait instead of failing.
func TestDropEpochWhileInserting(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 3 {
		wg.Go(func() {
			for i := range 30 {
				tags := []interfaces.ReplayTag{tag(byte(w)), tag(byte(i))}
				if _, err := s.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: uint64(i % 3), Tags: tags}); err != nil {
					errs <- err
					return
				}
				if _, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mbox(byte(w)), "x")}}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for i := range 10 {
				if _, err := s.DropReplayEpoch(ctx, &interfaces.DropReplayEpochRequest{Epoch: uint64(i % 3)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestValueLogGCRunsAndStopsOnClose(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.GCInterval = 5 * time.Millisecond
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.gcRuns.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("value log GC ran %d times in 10 s at a 5 ms interval", s.gcRuns.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	runs := s.gcRuns.Load()
	time.Sleep(20 * time.Millisecond)
	if s.gcRuns.Load() != runs {
		t.Fatal("value log GC kept running after Close")
	}

	cfg.GCInterval = 0
	s = openTest(t, cfg)
	time.Sleep(20 * time.Millisecond)
	if n := s.gcRuns.Load(); n != 0 {
		t.Fatalf("gc_interval 0 still ran GC %d times", n)
	}
}

func TestAppendWaitingForABusyMailboxHonoursContext(t *testing.T) {
	s := newStore(t)
	now := time.Now()
	clock(s, &now)
	first := uint64(now.Unix()) << idTimeShift
	mb := mbox(14)
	unlock, err := s.lockMailboxes(context.Background(), []interfaces.MailboxMessage{msg(mb, "")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mbox(15), "other"), msg(mb, "x")}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append to a locked mailbox: %v, want DeadlineExceeded", err)
	}
	unlock()
	// The failed call released what it held and wrote nothing.
	if got := appendOK(t, s, msg(mbox(15), "other"), msg(mb, "x")); !slices.Equal(got, []uint64{first, first}) {
		t.Fatalf("IDs after the timed-out append: %v, want both %d (nothing written before)", got, first)
	}
}
