package storagetest

import (
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
)

// The compare-and-swap cases (interfaces.KVSwapper). They run against
// every KV that implements it and are skipped, saying so, for one that
// does not, or that answers errors.ErrUnsupported (a KV reached through a
// host whose own KV does not swap).

func swapper(t *testing.T, s interfaces.KV) interfaces.KVSwapper {
	t.Helper()
	sw, ok := s.(interfaces.KVSwapper)
	if !ok {
		t.Skipf("%T is not an interfaces.KVSwapper", s)
	}
	if _, err := sw.KVSwap(ctx(t), &interfaces.KVSwapRequest{Namespace: "probe"}); errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("%T answers KVSwap with %v", s, err)
	} else if err != nil {
		t.Fatalf("KVSwap with no entries: %v", err)
	}
	return sw
}

func swap(t *testing.T, sw interfaces.KVSwapper, ns string, all bool, entries ...interfaces.KVSwapEntry) *interfaces.KVSwapResponse {
	t.Helper()
	resp, err := sw.KVSwap(ctx(t), &interfaces.KVSwapRequest{Namespace: ns, Entries: entries, All: all})
	if err != nil {
		t.Fatalf("KVSwap: %v", err)
	}
	if n := len(entries); len(resp.Applied) != n || len(resp.Current) != n || len(resp.Found) != n {
		t.Fatalf("KVSwap answered %d flags, %d values, %d found for %d entries", len(resp.Applied), len(resp.Current), len(resp.Found), n)
	}
	return resp
}

// cas is an entry that writes value if the key holds expected; new: if it
// does not exist.
func cas(key, expected, value string) interfaces.KVSwapEntry {
	return interfaces.KVSwapEntry{Key: []byte(key), Expected: []byte(expected), Value: []byte(value)}
}

func casNew(key, value string) interfaces.KVSwapEntry {
	return interfaces.KVSwapEntry{Key: []byte(key), ExpectAbsent: true, Value: []byte(value)}
}

func kvSwapMatches(t *testing.T, s interfaces.KV) {
	sw := swapper(t, s)
	put(t, s, "ns", kv("empty", ""))
	del := interfaces.KVSwapEntry{Key: []byte("b"), Expected: []byte("2"), Delete: true}
	for _, tc := range []struct {
		name    string
		entry   interfaces.KVSwapEntry
		applied bool
		current string
		found   bool
	}{
		{"a new key is written when absent is expected", casNew("a", "1"), true, "", false},
		{"an existing key is not written when absent is expected", casNew("a", "x"), false, "1", true},
		{"a matching value is replaced", cas("a", "1", "2"), true, "", false},
		{"a stale expectation is refused with the current value", cas("a", "1", "3"), false, "2", true},
		{"a missing key matches no expected value", cas("missing", "", "v"), false, "", false},
		{"an empty value is not an absent key", casNew("empty", "v"), false, "", true},
		{"an empty value matches an empty expectation", cas("empty", "", "full"), true, "", false},
		{"a matching delete applies", interfaces.KVSwapEntry{Key: []byte("a"), Expected: []byte("2"), Delete: true}, true, "", false},
		{"a delete of a missing key expecting a value is refused", del, false, "", false},
	} {
		r := swap(t, sw, "ns", false, tc.entry)
		if r.Applied[0] != tc.applied || r.Found[0] != tc.found || string(r.Current[0]) != tc.current {
			t.Errorf("%s: applied %v found %v current %q, want %v %v %q", tc.name, r.Applied[0], r.Found[0], r.Current[0], tc.applied, tc.found, tc.current)
		}
		if tc.found && r.Current[0] == nil {
			t.Errorf("%s: a found value is nil, want non-nil", tc.name)
		}
	}
	vals, found := get(t, s, "ns", "a", "empty", "missing")
	if found[0] || !found[1] || string(vals[1]) != "full" || found[2] {
		t.Errorf("after the swaps: a found %v, empty = %q (found %v), missing found %v; want a deleted, empty = full, missing absent",
			found[0], vals[1], found[1], found[2])
	}
}

func kvSwapBatch(t *testing.T, s interfaces.KV) {
	sw := swapper(t, s)
	// Each entry sees what the earlier ones of its batch left.
	r := swap(t, sw, "ns", false, casNew("k", "1"), cas("k", "1", "2"), cas("k", "1", "x"), casNew("j", "j"))
	if !equalBools(r.Applied, []bool{true, true, false, true}) || string(r.Current[2]) != "2" {
		t.Fatalf("a batch building on itself: applied %v, current[2] %q; want [true true false true], 2", r.Applied, r.Current[2])
	}
	// All: one entry that does not match and nothing is written.
	r = swap(t, sw, "ns", true, cas("k", "2", "3"), casNew("new", "n"), cas("j", "stale", "x"))
	if !equalBools(r.Applied, []bool{false, false, false}) {
		t.Fatalf("an all-or-nothing batch with a stale entry: applied %v, want none", r.Applied)
	}
	if string(r.Current[0]) != "2" || !r.Found[0] || r.Found[1] || string(r.Current[2]) != "j" {
		t.Errorf("an all-or-nothing batch refused: current %q found %v, want [2 <nil> j] [true false true]", r.Current, r.Found)
	}
	vals, found := get(t, s, "ns", "k", "new", "j")
	if string(vals[0]) != "2" || found[1] || string(vals[2]) != "j" {
		t.Errorf("a refused all-or-nothing batch wrote: k = %q, new found %v, j = %q", vals[0], found[1], vals[2])
	}
	r = swap(t, sw, "ns", true, cas("k", "2", "3"), casNew("new", "n"), cas("j", "j", "jj"))
	if !equalBools(r.Applied, []bool{true, true, true}) {
		t.Fatalf("a matching all-or-nothing batch: applied %v, want all", r.Applied)
	}
	if vals, _ := get(t, s, "ns", "k", "new", "j"); string(vals[0]) != "3" || string(vals[1]) != "n" || string(vals[2]) != "jj" {
		t.Errorf("after a matching all-or-nothing batch: %q, want [3 n jj]", vals)
	}
}

func kvSwapExpiry(t *testing.T, s interfaces.KV) {
	sw := swapper(t, s)
	e := casNew("lease", "holder 1")
	e.Lifetime = time.Second
	if r := swap(t, sw, "ns", false, e); !r.Applied[0] {
		t.Fatal("taking a free lease was refused")
	}
	if r := swap(t, sw, "ns", false, casNew("lease", "holder 2")); r.Applied[0] || string(r.Current[0]) != "holder 1" {
		t.Fatalf("a held lease was taken: applied %v, current %q", r.Applied[0], r.Current[0])
	}
	eventually(t, "an expired key counts as absent to KVSwap", func() bool {
		return swap(t, sw, "ns", false, casNew("lease", "holder 2")).Applied[0]
	})
	// The swapped-in value has no lifetime: it stays.
	time.Sleep(1500 * time.Millisecond)
	if vals, found := get(t, s, "ns", "lease"); !found[0] || string(vals[0]) != "holder 2" {
		t.Errorf("a value swapped in with no lifetime: %q (found %v), want holder 2", vals[0], found[0])
	}
}

func kvSwapInvalid(t *testing.T, s interfaces.KV, limit int) {
	sw := swapper(t, s)
	neg := casNew("a", "v")
	neg.Lifetime = -time.Second
	for _, tc := range []struct {
		name string
		req  interfaces.KVSwapRequest
	}{
		{"a delete with a value", interfaces.KVSwapRequest{Namespace: "ns", Entries: []interfaces.KVSwapEntry{casNew("ok", "v"), {Key: []byte("a"), Delete: true, Value: []byte("v")}}}},
		{"a negative lifetime", interfaces.KVSwapRequest{Namespace: "ns", Entries: []interfaces.KVSwapEntry{casNew("ok", "v"), neg}}},
		{"an empty key", interfaces.KVSwapRequest{Namespace: "ns", Entries: []interfaces.KVSwapEntry{casNew("ok", "v"), casNew("", "v")}}},
		{"an empty namespace", interfaces.KVSwapRequest{Entries: []interfaces.KVSwapEntry{casNew("ok", "v")}}},
		{"a namespace too long", interfaces.KVSwapRequest{Namespace: strings.Repeat("n", limit+1), Entries: []interfaces.KVSwapEntry{casNew("ok", "v")}}},
	} {
		if _, err := sw.KVSwap(ctx(t), &tc.req); !errors.Is(err, interfaces.ErrInvalidArgument) {
			t.Errorf("KVSwap with %s: err = %v, want ErrInvalidArgument", tc.name, err)
		}
	}
	if _, found := get(t, s, "ns", "ok"); found[0] {
		t.Error("a KVSwap refused as invalid wrote an entry of its batch")
	}
}

// kvSwapCounter: goroutines incrementing one counter by compare-and-swap
// loops never lose an increment.
func kvSwapCounter(t *testing.T, s interfaces.KV) {
	sw := swapper(t, s)
	const workers, each = 16, 5
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				incr(t, s, sw)
			}
		})
	}
	wg.Wait()
	vals, found := get(t, s, "counter", "n")
	if !found[0] || len(vals[0]) != 8 || binary.BigEndian.Uint64(vals[0]) != workers*each {
		t.Errorf("counter = %x (found %v) after %d concurrent increments, want %d", vals[0], found[0], workers*each, workers*each)
	}
}

func incr(t *testing.T, s interfaces.KV, sw interfaces.KVSwapper) {
	vals, found := get(t, s, "counter", "n")
	cur, ok := vals[0], found[0]
	for attempt := 0; ; attempt++ {
		if attempt == 10000 {
			t.Error("a compare-and-swap increment made no progress in 10000 attempts")
			return
		}
		var n uint64
		e := interfaces.KVSwapEntry{Key: []byte("n"), ExpectAbsent: !ok, Expected: cur}
		if ok {
			n = binary.BigEndian.Uint64(cur)
		}
		e.Value = binary.BigEndian.AppendUint64(nil, n+1)
		resp, err := sw.KVSwap(ctx(t), &interfaces.KVSwapRequest{Namespace: "counter", Entries: []interfaces.KVSwapEntry{e}})
		if err != nil {
			t.Errorf("KVSwap: %v", err)
			return
		}
		if resp.Applied[0] {
			return
		}
		cur, ok = resp.Current[0], resp.Found[0]
	}
}
