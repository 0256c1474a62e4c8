// Package memkv is an interfaces.KV held in memory: the key-value contract
// of interfaces/storage.go with nothing durable behind it. It is for what
// runs in one process and may lose its state with it: plugins under test,
// a client's messaging layer in a browser tab before the page has a store of
// its own, a simulator. It passes storagetest.RunKV; anything that must
// outlive the process uses a storage plugin (or, for a node-side plugin,
// the host KV that interfaces.HostServices hands it).
package memkv

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sottonet/sotto/interfaces"
)

// Limits, the same as storage-badger's so that code tested on a memkv
// behaves the same against a real store.
const (
	MaxNamespaceBytes = interfaces.MaxKVNamespaceBytes
	MaxKeyBytes       = interfaces.MaxKVKeyBytes
	MaxValueBytes     = 1 << 20
	defaultListLimit  = 1000
	maxListLimit      = 10000
)

type entry struct {
	value   []byte
	expires time.Time // zero: never
}

// KV is an in-memory interfaces.KV, safe for concurrent use. The zero
// value is not usable: call New.
type KV struct {
	mu  sync.Mutex
	ns  map[string]map[string]entry
	now func() time.Time
}

// New returns an empty KV.
func New() *KV { return &KV{ns: map[string]map[string]entry{}, now: time.Now} }

var (
	_ interfaces.KV        = (*KV)(nil)
	_ interfaces.KVSwapper = (*KV)(nil)
)

func check(op, ns string, keys [][]byte) error {
	if err := interfaces.CheckKVKeys(ns, keys); err != nil {
		return fmt.Errorf("memkv: %s: %w", op, err)
	}
	return nil
}

// checkEntry refuses entry i of a write whose key, value or lifetime is
// out of bounds.
func checkEntry(op string, i int, key, value []byte, lifetime time.Duration) error {
	if err := interfaces.CheckKVEntry(i, key, value, lifetime, MaxValueBytes); err != nil {
		return fmt.Errorf("memkv: %s: %w", op, err)
	}
	return nil
}

// live returns the entry of key in m unless it expired.
func (k *KV) live(m map[string]entry, key string, now time.Time) (entry, bool) {
	e, ok := m[key]
	if ok && !e.expires.IsZero() && !now.Before(e.expires) {
		delete(m, key)
		return entry{}, false
	}
	return e, ok
}

// KVPut implements interfaces.KV: entries apply in order, all or nothing
// (a batch that fails validation writes nothing).
func (k *KV) KVPut(ctx context.Context, req *interfaces.KVPutRequest) (*interfaces.KVPutResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("memkv: kv put: nil request: %w", interfaces.ErrInvalidArgument)
	}
	keys := make([][]byte, len(req.Entries))
	for i, e := range req.Entries {
		keys[i] = e.Key
		if err := checkEntry("kv put", i, e.Key, e.Value, e.Lifetime); err != nil {
			return nil, err
		}
	}
	if err := check("kv put", req.Namespace, keys); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	m := k.ns[req.Namespace]
	if m == nil {
		m = map[string]entry{}
		k.ns[req.Namespace] = m
	}
	now := k.now()
	applied := make([]bool, len(req.Entries))
	for i, e := range req.Entries {
		key := string(e.Key)
		if _, exists := k.live(m, key, now); exists && e.IfAbsent {
			continue
		}
		ne := entry{value: slices.Clone(e.Value)}
		if ne.value == nil {
			ne.value = []byte{}
		}
		if e.Lifetime > 0 {
			ne.expires = now.Add(e.Lifetime)
		}
		m[key] = ne
		applied[i] = true
	}
	return &interfaces.KVPutResponse{Applied: applied}, nil
}

// KVSwap implements interfaces.KVSwapper under the KV's one lock: the
// batch is checked against a staged view of the keys it names and
// committed at once.
func (k *KV) KVSwap(ctx context.Context, req *interfaces.KVSwapRequest) (*interfaces.KVSwapResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("memkv: kv swap: nil request: %w", interfaces.ErrInvalidArgument)
	}
	keys := make([][]byte, len(req.Entries))
	for i, e := range req.Entries {
		keys[i] = e.Key
		if err := checkEntry("kv swap", i, e.Key, e.Value, e.Lifetime); err != nil {
			return nil, err
		}
		if e.Delete && len(e.Value) > 0 {
			return nil, fmt.Errorf("memkv: kv swap: entry %d: a delete with a value: %w", i, interfaces.ErrInvalidArgument)
		}
	}
	if err := check("kv swap", req.Namespace, keys); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	m, now := k.ns[req.Namespace], k.now()
	type view struct {
		e     entry
		found bool
	}
	staged := map[string]view{} // the keys the batch wrote, as it left them
	n := len(req.Entries)
	resp := &interfaces.KVSwapResponse{Applied: make([]bool, n), Current: make([][]byte, n), Found: make([]bool, n)}
	compared := make([]view, n)
	failed := false
	for i, e := range req.Entries {
		key := string(e.Key)
		cur, ok := staged[key]
		if !ok {
			cur.e, cur.found = k.live(m, key, now)
		}
		compared[i] = cur
		if !swapMatches(e, cur.e.value, cur.found) {
			failed = true
			continue
		}
		resp.Applied[i] = true
		if e.Delete {
			staged[key] = view{}
			continue
		}
		ne := entry{value: slices.Clone(e.Value)}
		if ne.value == nil {
			ne.value = []byte{}
		}
		if e.Lifetime > 0 {
			ne.expires = now.Add(e.Lifetime)
		}
		staged[key] = view{ne, true}
	}
	if failed && req.All {
		clear(resp.Applied)
		staged = nil
	}
	for i := range compared {
		if !resp.Applied[i] && compared[i].found {
			resp.Current[i], resp.Found[i] = slices.Clone(compared[i].e.value), true
		}
	}
	if len(staged) > 0 && m == nil {
		m = map[string]entry{}
		k.ns[req.Namespace] = m
	}
	for key, v := range staged {
		if v.found {
			m[key] = v.e
		} else {
			delete(m, key)
		}
	}
	return resp, nil
}

// swapMatches reports whether e's condition holds for a key holding cur
// (found) or absent (!found).
func swapMatches(e interfaces.KVSwapEntry, cur []byte, found bool) bool {
	if e.ExpectAbsent {
		return !found
	}
	return found && bytes.Equal(cur, e.Expected)
}

// KVGet implements interfaces.KV.
func (k *KV) KVGet(ctx context.Context, req *interfaces.KVGetRequest) (*interfaces.KVGetResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("memkv: kv get: nil request: %w", interfaces.ErrInvalidArgument)
	}
	if err := check("kv get", req.Namespace, req.Keys); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	resp := &interfaces.KVGetResponse{Values: make([][]byte, len(req.Keys)), Found: make([]bool, len(req.Keys))}
	m, now := k.ns[req.Namespace], k.now()
	for i, key := range req.Keys {
		if e, ok := k.live(m, string(key), now); ok {
			resp.Values[i], resp.Found[i] = slices.Clone(e.value), true
		}
	}
	return resp, nil
}

// KVDelete implements interfaces.KV.
func (k *KV) KVDelete(ctx context.Context, req *interfaces.KVDeleteRequest) (*interfaces.KVDeleteResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("memkv: kv delete: nil request: %w", interfaces.ErrInvalidArgument)
	}
	if err := check("kv delete", req.Namespace, req.Keys); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, key := range req.Keys {
		delete(k.ns[req.Namespace], string(key))
	}
	return &interfaces.KVDeleteResponse{}, nil
}

// KVList implements interfaces.KV.
func (k *KV) KVList(ctx context.Context, req *interfaces.KVListRequest) (*interfaces.KVListResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("memkv: kv list: nil request: %w", interfaces.ErrInvalidArgument)
	}
	if err := interfaces.CheckKVList(req); err != nil {
		return nil, fmt.Errorf("memkv: kv list: %w", err)
	}
	limit := req.Limit
	if limit == 0 {
		limit = defaultListLimit
	}
	limit = min(limit, maxListLimit)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	m, now := k.ns[req.Namespace], k.now()
	var keys [][]byte
	for key := range m {
		b := []byte(key)
		if !bytes.HasPrefix(b, req.Prefix) || (req.After != nil && bytes.Compare(b, req.After) <= 0) {
			continue
		}
		if _, ok := k.live(m, key, now); ok {
			keys = append(keys, b)
		}
	}
	slices.SortFunc(keys, bytes.Compare)
	if len(keys) > limit {
		keys = keys[:limit]
	}
	return &interfaces.KVListResponse{Keys: keys}, nil
}
