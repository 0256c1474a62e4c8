package storagebadger

import (
	"bytes"
	"context"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/sottonet/sotto/interfaces"
)

const (
	defaultKVListLimit = 1000
	maxKVListLimit     = 10000
)

func (s *Store) validKeys(op, ns string, keys [][]byte) error {
	if err := interfaces.CheckKVKeys(ns, keys); err != nil {
		return fmt.Errorf("storage-badger: %s: %w", op, err)
	}
	return nil
}

// validEntry refuses entry i of a write whose key, value or lifetime is
// out of bounds (interfaces.CheckKVEntry, with max_value_bytes).
func (s *Store) validEntry(op string, i int, key, value []byte, lifetime time.Duration) error {
	if err := interfaces.CheckKVEntry(i, key, value, lifetime, s.cfg.MaxValueBytes); err != nil {
		return fmt.Errorf("storage-badger: %s: %w (max_value_bytes)", op, err)
	}
	return nil
}

// KVPut implements interfaces.KV. Entries apply in request order inside
// one transaction: an IfAbsent entry whose key an earlier entry of the
// same batch wrote is not applied; a plain entry overwrites. An expired
// key counts as absent.
func (s *Store) KVPut(ctx context.Context, req *interfaces.KVPutRequest) (*interfaces.KVPutResponse, error) {
	const op = "kv put"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-badger: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	if err := s.checkSpace(); err != nil {
		return nil, fmt.Errorf("storage-badger: %s: %w", op, err)
	}
	if err := s.validKeys(op, req.Namespace, nil); err != nil {
		return nil, err
	}
	for i, e := range req.Entries {
		if err := s.validEntry(op, i, e.Key, e.Value, e.Lifetime); err != nil {
			return nil, err
		}
	}
	applied := make([]bool, len(req.Entries))
	if len(req.Entries) == 0 {
		return &interfaces.KVPutResponse{Applied: applied}, nil
	}
	err := s.update(ctx, op, func(txn *badger.Txn) error {
		now := time.Now()
		for i, e := range req.Entries {
			key := kvKey(req.Namespace, e.Key)
			applied[i] = false
			if e.IfAbsent {
				_, err := txn.Get(key)
				if err == nil {
					continue
				}
				if err != badger.ErrKeyNotFound {
					return err
				}
			}
			be := badger.NewEntry(key, e.Value)
			if e.Lifetime > 0 {
				be.ExpiresAt = expiresAt(now, e.Lifetime)
			}
			if err := txn.SetEntry(be); err != nil {
				return err
			}
			applied[i] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &interfaces.KVPutResponse{Applied: applied}, nil
}

// KVGet implements interfaces.KV. A found key with an empty value gives a
// non-nil empty slice, so callers can tell it from a missing key by Found.
func (s *Store) KVGet(ctx context.Context, req *interfaces.KVGetRequest) (*interfaces.KVGetResponse, error) {
	const op = "kv get"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-badger: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	if err := s.validKeys(op, req.Namespace, req.Keys); err != nil {
		return nil, err
	}
	resp := &interfaces.KVGetResponse{Values: make([][]byte, len(req.Keys)), Found: make([]bool, len(req.Keys))}
	err := s.view(op, func(txn *badger.Txn) error {
		for i, k := range req.Keys {
			item, err := txn.Get(kvKey(req.Namespace, k))
			if err == badger.ErrKeyNotFound {
				continue
			}
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if v == nil {
				v = []byte{}
			}
			resp.Values[i], resp.Found[i] = v, true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// KVDelete implements interfaces.KV.
func (s *Store) KVDelete(ctx context.Context, req *interfaces.KVDeleteRequest) (*interfaces.KVDeleteResponse, error) {
	const op = "kv delete"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-badger: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	if err := s.validKeys(op, req.Namespace, req.Keys); err != nil {
		return nil, err
	}
	if len(req.Keys) == 0 {
		return &interfaces.KVDeleteResponse{}, nil
	}
	err := s.update(ctx, op, func(txn *badger.Txn) error {
		for _, k := range req.Keys {
			if err := txn.Delete(kvKey(req.Namespace, k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &interfaces.KVDeleteResponse{}, nil
}

// KVList implements interfaces.KV. After need not start with Prefix: the
// scan starts at whichever of the two comes later in byte order.
func (s *Store) KVList(ctx context.Context, req *interfaces.KVListRequest) (*interfaces.KVListResponse, error) {
	const op = "kv list"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-badger: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	if err := interfaces.CheckKVList(req); err != nil {
		return nil, fmt.Errorf("storage-badger: %s: %w", op, err)
	}
	limit, err := clampLimit(req.Limit, defaultKVListLimit, maxKVListLimit)
	if err != nil {
		return nil, fmt.Errorf("storage-badger: %s: %w", op, err)
	}
	nsPrefix := kvPrefix(req.Namespace, 0)
	prefix := kvKey(req.Namespace, req.Prefix)
	start := prefix
	if req.After != nil {
		// The smallest key strictly after After is After followed by 0x00.
		afterNext := append(kvKey(req.Namespace, req.After), 0)
		if bytes.Compare(afterNext, start) > 0 {
			start = afterNext
		}
	}
	keys := [][]byte{}
	err = s.view(op, func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(start); it.ValidForPrefix(prefix) && len(keys) < limit; it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			keys = append(keys, bytes.Clone(it.Item().Key()[len(nsPrefix):]))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &interfaces.KVListResponse{Keys: keys}, nil
}

var _ interfaces.KVSwapper = (*Store)(nil)

// KVSwap implements interfaces.KVSwapper in one Badger transaction: the
// batch reads its keys, decides against a staged view of them and writes
// what applies, committed durably at once. A transaction that conflicts
// with a concurrent writer of one of its keys is run again from the
// start (update), so every comparison sees the value it replaces.
func (s *Store) KVSwap(ctx context.Context, req *interfaces.KVSwapRequest) (*interfaces.KVSwapResponse, error) {
	const op = "kv swap"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-badger: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	if err := s.checkSpace(); err != nil {
		return nil, fmt.Errorf("storage-badger: %s: %w", op, err)
	}
	if err := s.validKeys(op, req.Namespace, nil); err != nil {
		return nil, err
	}
	for i, e := range req.Entries {
		if err := s.validEntry(op, i, e.Key, e.Value, e.Lifetime); err != nil {
			return nil, err
		}
		if e.Delete && len(e.Value) > 0 {
			return nil, fmt.Errorf("storage-badger: %s: entry %d: a delete with a value: %w", op, i, interfaces.ErrInvalidArgument)
		}
	}
	n := len(req.Entries)
	resp := &interfaces.KVSwapResponse{Applied: make([]bool, n), Current: make([][]byte, n), Found: make([]bool, n)}
	if n == 0 {
		return resp, nil
	}
	type view struct {
		value []byte
		found bool
	}
	err := s.update(ctx, op, func(txn *badger.Txn) error {
		clear(resp.Applied)
		clear(resp.Current)
		clear(resp.Found)
		staged := map[string]view{} // keys the batch writes, as it leaves them
		compared := make([]view, n)
		failed := false
		for i, e := range req.Entries {
			key := kvKey(req.Namespace, e.Key)
			cur, ok := staged[string(key)]
			if !ok {
				item, err := txn.Get(key)
				switch {
				case err == badger.ErrKeyNotFound:
				case err != nil:
					return err
				default:
					v, err := item.ValueCopy(nil)
					if err != nil {
						return err
					}
					cur = view{value: v, found: true}
				}
			}
			compared[i] = cur
			match := !cur.found
			if !e.ExpectAbsent {
				match = cur.found && bytes.Equal(cur.value, e.Expected)
			}
			if !match {
				failed = true
				continue
			}
			resp.Applied[i] = true
			if e.Delete {
				staged[string(key)] = view{}
			} else {
				staged[string(key)] = view{value: e.Value, found: true}
			}
		}
		if failed && req.All {
			clear(resp.Applied)
		}
		now := time.Now()
		for i, e := range req.Entries {
			if !resp.Applied[i] {
				if compared[i].found {
					resp.Current[i], resp.Found[i] = compared[i].value, true
					if resp.Current[i] == nil {
						resp.Current[i] = []byte{}
					}
				}
				continue
			}
			key := kvKey(req.Namespace, e.Key)
			if e.Delete {
				if err := txn.Delete(key); err != nil {
					return err
				}
				continue
			}
			be := badger.NewEntry(key, e.Value)
			if e.Lifetime > 0 {
				be.ExpiresAt = expiresAt(now, e.Lifetime)
			}
			if err := txn.SetEntry(be); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}
