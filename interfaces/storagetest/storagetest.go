// Package storagetest is the conformance suite of the Storage plugin kind:
// any implementation of interfaces.Storage runs it, in process and over
// gRPC, to show it keeps every promise of interfaces/storage.go.
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) interfaces.Storage { return openMine(t) })
//	}
//	func TestConformanceOverGRPC(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) interfaces.Storage {
//			return storagetest.OverGRPC(t, openMine(t))
//		})
//	}
//
// Each subtest opens a fresh, empty store. Expiry subtests use lifetimes of
// one second (stores may round lifetimes to whole seconds) and poll, so the
// suite takes a few seconds; its subtests run in parallel. The cases, by
// the names they run under:
//
//   - append assigns growing IDs in request order; append is not idempotent;
//     append refuses a zero or negative lifetime, all or nothing
//   - list is ascending, pages with After and Limit, has no payloads
//   - fetch returns payloads and respects MaxBytes; fetch does not remove
//     and ack deletes idempotently; mailboxes are isolated
//   - expired messages are not listed or fetched
//   - concurrent appends get unique IDs
//   - replay tags report replays, also inside a batch; replay epochs are
//     separate and drop alone; concurrent replay batches report each tag
//     new exactly once
//   - a cancelled call fails with the context's error and a cancelled
//     batch is all or nothing
//   - acknowledged writes survive a restart (Options.Reopen): messages,
//     acks, KV entries, replay tags, growing IDs
//   - and the KV cases, which RunKV runs alone: round trip, IfAbsent,
//     namespaces isolated and validated, idempotent delete, ordered and
//     paged list, expiry, and concurrent IfAbsent puts of one key apply
//     exactly once
//   - and, for a KV that is an interfaces.KVSwapper (skipped otherwise):
//     kv swap writes only on a match and reports the current value; kv
//     swap batches build on themselves and All is all or nothing; kv swap
//     sees expired keys as absent and sets the new lifetime; kv swap
//     refuses invalid batches whole; kv concurrent compare-and-swap
//     increments of one counter all count
//
// To run it against a plugin's real binary, see plugintest.Build and
// plugintest.Process.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/plugintest"
)

// OverGRPC returns s as seen by a host through a real go-plugin gRPC
// connection in this process.
func OverGRPC(t testing.TB, s interfaces.Storage) interfaces.Storage {
	t.Helper()
	return plugintest.GRPC(t, interfaces.StorageKind, s).(interfaces.Storage)
}

// Run runs the suite. open must return a fresh, empty store and arrange its
// closing with t.Cleanup. opts (at most one) adds optional cases.
func Run(t *testing.T, open func(t *testing.T) interfaces.Storage, opts ...Options) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open(t))
		})
	}
	t.Run("acknowledged writes survive a restart", func(t *testing.T) {
		if o.Reopen == nil {
			t.Skip("no Options.Reopen")
		}
		t.Parallel()
		restarted(t, open(t), o.Reopen)
	})
	RunKV(t, func(t *testing.T) interfaces.KV { return open(t) })
}

// MaxNamespace is the longest namespace a Storage's KV accepts.
const MaxNamespace = interfaces.MaxKVNamespaceBytes

// RunKV runs the key-value cases alone, for an implementation of
// interfaces.KV that is not a whole Storage (an in-memory KV, the host KV a
// plugin is handed). maxNamespace, if given, is the implementation's
// longest namespace when it is shorter than MaxNamespace (the host KV's is
// interfaces.MaxHostNamespace).
func RunKV(t *testing.T, open func(t *testing.T) interfaces.KV, maxNamespace ...int) {
	limit := MaxNamespace
	if len(maxNamespace) > 0 {
		limit = maxNamespace[0]
	}
	for _, tc := range kvCases(limit) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open(t))
		})
	}
}

var cases = []struct {
	name string
	run  func(t *testing.T, s interfaces.Storage)
}{
	{"append assigns growing IDs in request order", appendIDs},
	{"append is not idempotent", appendTwice},
	{"append refuses a zero or negative lifetime, all or nothing", appendInvalid},
	{"list is ascending, pages with After and Limit, has no payloads", listPaging},
	{"fetch returns payloads and respects MaxBytes", fetchBytes},
	{"fetch does not remove and ack deletes idempotently", fetchAck},
	{"mailboxes are isolated", mailboxIsolation},
	{"expired messages are not listed or fetched", mailboxExpiry},
	{"concurrent appends get unique IDs", appendConcurrent},
	{"replay tags report replays, also inside a batch", replaySeen},
	{"replay epochs are separate and drop alone", replayEpochs},
	{"concurrent replay batches report each tag new exactly once", replayConcurrent},
	{"a cancelled call fails with the context's error and a cancelled batch is all or nothing", cancelledCalls},
}

func kvCases(maxNamespace int) []struct {
	name string
	run  func(t *testing.T, s interfaces.KV)
} {
	return []struct {
		name string
		run  func(t *testing.T, s interfaces.KV)
	}{
		{"kv put and get round trip, missing keys are not errors", kvRoundTrip},
		{"kv IfAbsent writes only new keys", kvIfAbsent},
		{"kv namespaces are isolated and validated", func(t *testing.T, s interfaces.KV) { kvNamespaces(t, s, maxNamespace) }},
		{"kv delete is idempotent", kvDelete},
		{"kv list is ordered and pages with Prefix, After, Limit", kvList},
		{"kv entries expire after their lifetime", kvExpiry},
		{"kv concurrent IfAbsent puts of one key apply exactly once", kvConcurrentIfAbsent},
		{"kv swap writes only on a match and reports the current value", kvSwapMatches},
		{"kv swap batches build on themselves and All is all or nothing", kvSwapBatch},
		{"kv swap sees expired keys as absent and sets the new lifetime", kvSwapExpiry},
		{"kv swap refuses invalid batches whole", func(t *testing.T, s interfaces.KV) { kvSwapInvalid(t, s, maxNamespace) }},
		{"kv concurrent compare-and-swap increments of one counter all count", kvSwapCounter},
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func mbox(b byte) interfaces.MailboxID {
	var id interfaces.MailboxID
	for i := range id {
		id[i] = b + byte(i)
	}
	return id
}

func tag(epoch uint64, i int) interfaces.ReplayTag {
	var tg interfaces.ReplayTag
	copy(tg[:], fmt.Sprintf("tag-%d-%d", epoch, i))
	return tg
}

func msg(m interfaces.MailboxID, payload string) interfaces.MailboxMessage {
	return interfaces.MailboxMessage{Mailbox: m, Payload: []byte(payload), Lifetime: time.Hour}
}

func mustAppend(t *testing.T, s interfaces.Storage, msgs ...interfaces.MailboxMessage) []uint64 {
	t.Helper()
	resp, err := s.AppendMailbox(ctx(t), &interfaces.AppendMailboxRequest{Messages: msgs})
	if err != nil {
		t.Fatalf("AppendMailbox: %v", err)
	}
	if len(resp.IDs) != len(msgs) {
		t.Fatalf("AppendMailbox returned %d IDs for %d messages", len(resp.IDs), len(msgs))
	}
	return resp.IDs
}

func list(t *testing.T, s interfaces.Storage, m interfaces.MailboxID, after uint64, limit int) []interfaces.MailboxEntry {
	t.Helper()
	resp, err := s.ListMailbox(ctx(t), &interfaces.ListMailboxRequest{Mailbox: m, After: after, Limit: limit})
	if err != nil {
		t.Fatalf("ListMailbox: %v", err)
	}
	return resp.Entries
}

func fetch(t *testing.T, s interfaces.Storage, req *interfaces.FetchMailboxRequest) []interfaces.MailboxEntry {
	t.Helper()
	resp, err := s.FetchMailbox(ctx(t), req)
	if err != nil {
		t.Fatalf("FetchMailbox: %v", err)
	}
	return resp.Entries
}

func ids(es []interfaces.MailboxEntry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func appendIDs(t *testing.T, s interfaces.Storage) {
	a, b := mbox(1), mbox(2)
	first := mustAppend(t, s, msg(a, "a1"), msg(b, "b1"), msg(a, "a2"))
	if first[0] >= first[2] {
		t.Errorf("IDs in mailbox a do not grow with request order: %v", first)
	}
	second := mustAppend(t, s, msg(a, "a3"))
	if second[0] <= first[2] {
		t.Errorf("ID %d of a later append is not greater than earlier ID %d", second[0], first[2])
	}
	got := fetch(t, s, &interfaces.FetchMailboxRequest{Mailbox: a})
	want := []string{"a1", "a2", "a3"}
	if len(got) != len(want) {
		t.Fatalf("mailbox a holds %d messages, want %d", len(got), len(want))
	}
	for i, e := range got {
		if string(e.Payload) != want[i] {
			t.Errorf("message %d = %q, want %q", i, e.Payload, want[i])
		}
	}
	if !equalIDs(ids(got), []uint64{first[0], first[2], second[0]}) {
		t.Errorf("fetched IDs %v do not match the appended ones", ids(got))
	}
}

func appendTwice(t *testing.T, s interfaces.Storage) {
	a := mbox(3)
	x := mustAppend(t, s, msg(a, "same"))
	y := mustAppend(t, s, msg(a, "same"))
	if x[0] == y[0] {
		t.Fatalf("two appends got the same ID %d", x[0])
	}
	if n := len(list(t, s, a, 0, 0)); n != 2 {
		t.Fatalf("mailbox holds %d messages after two appends, want 2", n)
	}
}

func appendInvalid(t *testing.T, s interfaces.Storage) {
	a := mbox(4)
	for _, lifetime := range []time.Duration{0, -time.Second} {
		_, err := s.AppendMailbox(ctx(t), &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{
			msg(a, "ok"), {Mailbox: a, Payload: []byte("bad"), Lifetime: lifetime},
		}})
		if !errors.Is(err, interfaces.ErrInvalidArgument) {
			t.Errorf("lifetime %v: err = %v, want ErrInvalidArgument", lifetime, err)
		}
	}
	if n := len(list(t, s, a, 0, 0)); n != 0 {
		t.Fatalf("a refused batch left %d messages behind", n)
	}
}

func listPaging(t *testing.T, s interfaces.Storage) {
	a := mbox(5)
	var msgs []interfaces.MailboxMessage
	for i := range 10 {
		msgs = append(msgs, msg(a, strings.Repeat("x", i+1)))
	}
	all := mustAppend(t, s, msgs...)
	got := list(t, s, a, 0, 0)
	if !equalIDs(ids(got), all) {
		t.Fatalf("list = %v, want %v", ids(got), all)
	}
	for i, e := range got {
		if e.Payload != nil {
			t.Errorf("list entry %d carries a payload", i)
		}
		if e.Size != i+1 {
			t.Errorf("list entry %d has size %d, want %d", i, e.Size, i+1)
		}
		if until := time.Until(e.Expires); until < 50*time.Minute || until > 70*time.Minute {
			t.Errorf("list entry %d expires in %v, want about an hour", i, until)
		}
	}
	page := list(t, s, a, all[3], 4)
	if !equalIDs(ids(page), all[4:8]) {
		t.Errorf("list after %d limit 4 = %v, want %v", all[3], ids(page), all[4:8])
	}
	if rest := list(t, s, a, all[9], 0); len(rest) != 0 {
		t.Errorf("list after the last ID = %v, want nothing", ids(rest))
	}
	if empty := list(t, s, mbox(99), 0, 0); len(empty) != 0 {
		t.Errorf("an unknown mailbox lists %d entries", len(empty))
	}
}

func fetchBytes(t *testing.T, s interfaces.Storage) {
	a := mbox(6)
	all := mustAppend(t, s, msg(a, strings.Repeat("a", 100)), msg(a, strings.Repeat("b", 100)), msg(a, strings.Repeat("c", 100)))
	got := fetch(t, s, &interfaces.FetchMailboxRequest{Mailbox: a, MaxBytes: 250})
	if !equalIDs(ids(got), all[:2]) {
		t.Errorf("fetch with MaxBytes 250 = %v, want %v", ids(got), all[:2])
	}
	one := fetch(t, s, &interfaces.FetchMailboxRequest{Mailbox: a, MaxBytes: 10})
	if !equalIDs(ids(one), all[:1]) {
		t.Errorf("fetch with MaxBytes below one message = %v, want the first message alone", ids(one))
	}
	lim := fetch(t, s, &interfaces.FetchMailboxRequest{Mailbox: a, After: all[0], Limit: 1})
	if !equalIDs(ids(lim), all[1:2]) || !bytes.Equal(lim[0].Payload, bytes.Repeat([]byte("b"), 100)) {
		t.Errorf("fetch after the first, limit 1 = %v, want %v with its payload", ids(lim), all[1:2])
	}
}

func fetchAck(t *testing.T, s interfaces.Storage) {
	a := mbox(7)
	all := mustAppend(t, s, msg(a, "1"), msg(a, "2"), msg(a, "3"))
	fetch(t, s, &interfaces.FetchMailboxRequest{Mailbox: a})
	if n := len(fetch(t, s, &interfaces.FetchMailboxRequest{Mailbox: a})); n != 3 {
		t.Fatalf("after a fetch the mailbox holds %d messages, want 3", n)
	}
	for _, step := range []struct {
		ids  []uint64
		want int
	}{
		{[]uint64{all[0], all[2]}, 2},
		{[]uint64{all[0], all[2]}, 0},
		{[]uint64{all[2] + 1000}, 0},
		{[]uint64{all[1], all[1]}, 1},
	} {
		resp, err := s.AckMailbox(ctx(t), &interfaces.AckMailboxRequest{Mailbox: a, IDs: step.ids})
		if err != nil {
			t.Fatalf("AckMailbox(%v): %v", step.ids, err)
		}
		if resp.Deleted != step.want {
			t.Errorf("AckMailbox(%v) deleted %d, want %d", step.ids, resp.Deleted, step.want)
		}
	}
	if left := list(t, s, a, 0, 0); len(left) != 0 {
		t.Errorf("after acknowledging everything the mailbox holds %v", ids(left))
	}
}

func mailboxIsolation(t *testing.T, s interfaces.Storage) {
	a, b := mbox(8), mbox(9)
	ia := mustAppend(t, s, msg(a, "for a"))
	mustAppend(t, s, msg(b, "for b"))
	if _, err := s.AckMailbox(ctx(t), &interfaces.AckMailboxRequest{Mailbox: b, IDs: ia}); err != nil {
		t.Fatal(err)
	}
	got := fetch(t, s, &interfaces.FetchMailboxRequest{Mailbox: a})
	if len(got) != 1 || string(got[0].Payload) != "for a" {
		t.Fatalf("mailbox a = %v after an ack in mailbox b, want its one message", got)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after 10s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mailboxExpiry(t *testing.T, s interfaces.Storage) {
	a := mbox(10)
	mustAppend(t, s, interfaces.MailboxMessage{Mailbox: a, Payload: []byte("short"), Lifetime: time.Second}, msg(a, "long"))
	eventually(t, "the short-lived message expires", func() bool {
		return len(list(t, s, a, 0, 0)) == 1
	})
	got := fetch(t, s, &interfaces.FetchMailboxRequest{Mailbox: a})
	if len(got) != 1 || string(got[0].Payload) != "long" {
		t.Fatalf("after expiry fetch = %v, want only the long-lived message", got)
	}
}

func appendConcurrent(t *testing.T, s interfaces.Storage) {
	a := mbox(11)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.AppendMailbox(ctx(t), &interfaces.AppendMailboxRequest{
					Messages: []interfaces.MailboxMessage{msg(a, fmt.Sprintf("%d/%d", w, i))},
				}); err != nil {
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
	got := list(t, s, a, 0, workers*each+10)
	if len(got) != workers*each {
		t.Fatalf("mailbox holds %d messages, want %d", len(got), workers*each)
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID <= got[i-1].ID {
			t.Fatalf("IDs not unique and ascending at %d: %d then %d", i, got[i-1].ID, got[i].ID)
		}
	}
}

func insert(t *testing.T, s interfaces.Storage, epoch uint64, tags ...interfaces.ReplayTag) []bool {
	t.Helper()
	resp, err := s.InsertReplayTags(ctx(t), &interfaces.InsertReplayTagsRequest{Epoch: epoch, Tags: tags})
	if err != nil {
		t.Fatalf("InsertReplayTags: %v", err)
	}
	if len(resp.Seen) != len(tags) {
		t.Fatalf("InsertReplayTags answered %d flags for %d tags", len(resp.Seen), len(tags))
	}
	return resp.Seen
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func replaySeen(t *testing.T, s interfaces.Storage) {
	t0, t1, t2 := tag(1, 0), tag(1, 1), tag(1, 2)
	steps := []struct {
		tags []interfaces.ReplayTag
		want []bool
	}{
		{[]interfaces.ReplayTag{t0, t1}, []bool{false, false}},
		{[]interfaces.ReplayTag{t1, t2, t2, t0, t2}, []bool{true, false, true, true, true}},
		{[]interfaces.ReplayTag{t2}, []bool{true}},
	}
	for i, st := range steps {
		if got := insert(t, s, 1, st.tags...); !equalBools(got, st.want) {
			t.Errorf("batch %d: seen = %v, want %v", i, got, st.want)
		}
	}
	var big []interfaces.ReplayTag
	for i := range 100 {
		big = append(big, tag(1, 100+i))
	}
	for _, seen := range insert(t, s, 1, big...) {
		if seen {
			t.Fatal("a fresh tag in a batch of 100 was reported seen")
		}
	}
	for _, seen := range insert(t, s, 1, big...) {
		if !seen {
			t.Fatal("a replayed tag in a batch of 100 was reported fresh")
		}
	}
}

// replayConcurrent sends overlapping batches from several goroutines at
// once, as a node with several group commits in flight does: each tag must
// be reported new by exactly one call.
func replayConcurrent(t *testing.T, s interfaces.Storage) {
	const workers, rounds, shared = 6, 10, 4
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fresh = map[interfaces.ReplayTag]int{}
		errs  = make(chan error, workers)
	)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				// shared tags every worker sends in round r, and one of its own.
				tags := []interfaces.ReplayTag{tag(7, 1000+w*rounds+r)}
				for i := range shared {
					tags = append(tags, tag(7, r*shared+i))
				}
				resp, err := s.InsertReplayTags(ctx(t), &interfaces.InsertReplayTagsRequest{Epoch: 7, Tags: tags})
				if err == nil && len(resp.Seen) != len(tags) {
					err = fmt.Errorf("%d flags for %d tags", len(resp.Seen), len(tags))
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for i, seen := range resp.Seen {
					if !seen {
						fresh[tags[i]]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("InsertReplayTags: %v", err)
	}
	if want := workers*rounds + rounds*shared; len(fresh) != want {
		t.Errorf("%d distinct tags reported new, want %d", len(fresh), want)
	}
	for tg, n := range fresh {
		if n != 1 {
			t.Errorf("tag %x reported new %d times", tg[:4], n)
		}
	}
}

func replayEpochs(t *testing.T, s interfaces.Storage) {
	x := tag(0, 7)
	insert(t, s, 5, x)
	if got := insert(t, s, 6, x); got[0] {
		t.Error("a tag of epoch 5 was reported seen in epoch 6")
	}
	for range 2 { // idempotent
		if _, err := s.DropReplayEpoch(ctx(t), &interfaces.DropReplayEpochRequest{Epoch: 5}); err != nil {
			t.Fatalf("DropReplayEpoch: %v", err)
		}
	}
	if _, err := s.DropReplayEpoch(ctx(t), &interfaces.DropReplayEpochRequest{Epoch: 12345}); err != nil {
		t.Fatalf("DropReplayEpoch of an unknown epoch: %v", err)
	}
	if got := insert(t, s, 5, x); got[0] {
		t.Error("a tag of a dropped epoch is still seen")
	}
	if got := insert(t, s, 6, x); !got[0] {
		t.Error("dropping epoch 5 forgot a tag of epoch 6")
	}
}

func put(t *testing.T, s interfaces.KV, ns string, entries ...interfaces.KVEntry) []bool {
	t.Helper()
	resp, err := s.KVPut(ctx(t), &interfaces.KVPutRequest{Namespace: ns, Entries: entries})
	if err != nil {
		t.Fatalf("KVPut: %v", err)
	}
	if len(resp.Applied) != len(entries) {
		t.Fatalf("KVPut answered %d flags for %d entries", len(resp.Applied), len(entries))
	}
	return resp.Applied
}

func get(t *testing.T, s interfaces.KV, ns string, keys ...string) ([][]byte, []bool) {
	t.Helper()
	var k [][]byte
	for _, key := range keys {
		k = append(k, []byte(key))
	}
	resp, err := s.KVGet(ctx(t), &interfaces.KVGetRequest{Namespace: ns, Keys: k})
	if err != nil {
		t.Fatalf("KVGet: %v", err)
	}
	if len(resp.Values) != len(keys) || len(resp.Found) != len(keys) {
		t.Fatalf("KVGet answered %d values, %d flags for %d keys", len(resp.Values), len(resp.Found), len(keys))
	}
	return resp.Values, resp.Found
}

func kv(k, v string) interfaces.KVEntry { return interfaces.KVEntry{Key: []byte(k), Value: []byte(v)} }

func kvRoundTrip(t *testing.T, s interfaces.KV) {
	if applied := put(t, s, "ns", kv("a", "1"), kv("b", "2")); !equalBools(applied, []bool{true, true}) {
		t.Errorf("applied = %v, want both", applied)
	}
	put(t, s, "ns", kv("a", "one"))
	vals, found := get(t, s, "ns", "a", "missing", "b")
	if !equalBools(found, []bool{true, false, true}) {
		t.Fatalf("found = %v", found)
	}
	if string(vals[0]) != "one" || vals[1] != nil || string(vals[2]) != "2" {
		t.Errorf("values = %q, want [one <nil> 2]", vals)
	}
}

func kvIfAbsent(t *testing.T, s interfaces.KV) {
	spent := func(k, v string) interfaces.KVEntry { e := kv(k, v); e.IfAbsent = true; return e }
	if got := put(t, s, "spent", spent("tok1", "first"), spent("tok2", "x")); !equalBools(got, []bool{true, true}) {
		t.Fatalf("first spend applied = %v", got)
	}
	if got := put(t, s, "spent", spent("tok1", "second"), spent("tok3", "y")); !equalBools(got, []bool{false, true}) {
		t.Fatalf("double spend applied = %v, want [false true]", got)
	}
	vals, _ := get(t, s, "spent", "tok1")
	if string(vals[0]) != "first" {
		t.Errorf("IfAbsent overwrote an existing value: %q", vals[0])
	}
}

func kvNamespaces(t *testing.T, s interfaces.KV, limit int) {
	put(t, s, "one", kv("k", "1"))
	put(t, s, "two", kv("k", "2"))
	v1, _ := get(t, s, "one", "k")
	v2, _ := get(t, s, "two", "k")
	if string(v1[0]) != "1" || string(v2[0]) != "2" {
		t.Errorf("namespaces leak: one=%q two=%q", v1[0], v2[0])
	}
	if _, f := get(t, s, "on", "ek"); f[0] {
		t.Error("namespace and key boundaries are ambiguous: (on, ek) found (one, k)")
	}
	put(t, s, strings.Repeat("n", limit), kv("k", "v"))
	bad := []string{"", strings.Repeat("n", limit+1)}
	for _, ns := range bad {
		calls := map[string]error{}
		_, calls["KVPut"] = s.KVPut(ctx(t), &interfaces.KVPutRequest{Namespace: ns, Entries: []interfaces.KVEntry{kv("k", "v")}})
		_, calls["KVGet"] = s.KVGet(ctx(t), &interfaces.KVGetRequest{Namespace: ns, Keys: [][]byte{[]byte("k")}})
		_, calls["KVDelete"] = s.KVDelete(ctx(t), &interfaces.KVDeleteRequest{Namespace: ns, Keys: [][]byte{[]byte("k")}})
		_, calls["KVList"] = s.KVList(ctx(t), &interfaces.KVListRequest{Namespace: ns})
		for name, err := range calls {
			if !errors.Is(err, interfaces.ErrInvalidArgument) {
				t.Errorf("%s with a namespace of %d bytes: err = %v, want ErrInvalidArgument", name, len(ns), err)
			}
		}
	}
}

func kvDelete(t *testing.T, s interfaces.KV) {
	put(t, s, "ns", kv("a", "1"), kv("b", "2"))
	for range 2 {
		if _, err := s.KVDelete(ctx(t), &interfaces.KVDeleteRequest{Namespace: "ns", Keys: [][]byte{[]byte("a"), []byte("never")}}); err != nil {
			t.Fatalf("KVDelete: %v", err)
		}
	}
	if _, found := get(t, s, "ns", "a", "b"); !equalBools(found, []bool{false, true}) {
		t.Errorf("after deleting a, found = %v, want [false true]", found)
	}
}

func kvList(t *testing.T, s interfaces.KV) {
	put(t, s, "ns", kv("p/c", ""), kv("p/a", ""), kv("q", ""), kv("p/b", ""), kv("p/d", ""))
	put(t, s, "other", kv("p/zzz", ""))
	for _, tc := range []struct {
		req  interfaces.KVListRequest
		want string
	}{
		{interfaces.KVListRequest{}, "p/a p/b p/c p/d q"},
		{interfaces.KVListRequest{Prefix: []byte("p/")}, "p/a p/b p/c p/d"},
		{interfaces.KVListRequest{Prefix: []byte("p/"), After: []byte("p/b")}, "p/c p/d"},
		{interfaces.KVListRequest{Prefix: []byte("p/"), Limit: 2}, "p/a p/b"},
		{interfaces.KVListRequest{Prefix: []byte("z")}, ""},
	} {
		tc.req.Namespace = "ns"
		resp, err := s.KVList(ctx(t), &tc.req)
		if err != nil {
			t.Fatalf("KVList(%+v): %v", tc.req, err)
		}
		var got []string
		for _, k := range resp.Keys {
			got = append(got, string(k))
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("KVList(prefix %q after %q limit %d) = %q, want %q", tc.req.Prefix, tc.req.After, tc.req.Limit, got, tc.want)
		}
	}
}

func kvExpiry(t *testing.T, s interfaces.KV) {
	short := kv("short", "x")
	short.Lifetime = time.Second
	put(t, s, "ns", short, kv("forever", "y"))
	eventually(t, "the short-lived key expires", func() bool {
		_, found := get(t, s, "ns", "short")
		return !found[0]
	})
	if _, found := get(t, s, "ns", "forever"); !found[0] {
		t.Error("a key with no lifetime disappeared")
	}
}
