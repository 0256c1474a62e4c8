package interfaces

import (
	"fmt"
	"time"
)

// The KV contract's bounds, the same for every Storage: a namespace is 1
// to MaxKVNamespaceBytes bytes, a key 1 to MaxKVKeyBytes. A Storage sets
// its own bound on values (storage-badger's max_value_bytes).
const (
	MaxKVNamespaceBytes = 64
	MaxKVKeyBytes       = 1024
)

// CheckKVKeys refuses a namespace or a key out of the contract's bounds,
// with an error wrapping ErrInvalidArgument that names which. A Storage
// calls it before it touches its store, so every backend refuses the same
// requests with the same words.
func CheckKVKeys(namespace string, keys [][]byte) error {
	if namespace == "" || len(namespace) > MaxKVNamespaceBytes {
		return fmt.Errorf("namespace of %d bytes, want 1..%d: %w", len(namespace), MaxKVNamespaceBytes, ErrInvalidArgument)
	}
	for i, k := range keys {
		if err := checkKVKey(i, k); err != nil {
			return err
		}
	}
	return nil
}

// CheckKVEntry refuses entry i of a write (KVPut or KVSwap) that breaks
// the contract: a key out of bounds, a negative lifetime, or a value
// longer than maxValue bytes (the Storage's own bound).
func CheckKVEntry(i int, key, value []byte, lifetime time.Duration, maxValue int) error {
	if err := checkKVKey(i, key); err != nil {
		return err
	}
	if lifetime < 0 {
		return fmt.Errorf("entry %d: lifetime %v is negative: %w", i, lifetime, ErrInvalidArgument)
	}
	if len(value) > maxValue {
		return fmt.Errorf("entry %d: value of %d bytes exceeds the store's limit of %d: %w", i, len(value), maxValue, ErrInvalidArgument)
	}
	return nil
}

// CheckKVList refuses a list request out of the contract's bounds.
func CheckKVList(req *KVListRequest) error {
	if err := CheckKVKeys(req.Namespace, nil); err != nil {
		return err
	}
	if len(req.Prefix) > MaxKVKeyBytes || len(req.After) > MaxKVKeyBytes || req.Limit < 0 {
		return fmt.Errorf("prefix of %d bytes, after of %d, limit %d; want at most %d bytes each and a limit of 0 or more: %w",
			len(req.Prefix), len(req.After), req.Limit, MaxKVKeyBytes, ErrInvalidArgument)
	}
	return nil
}

func checkKVKey(i int, key []byte) error {
	if len(key) == 0 || len(key) > MaxKVKeyBytes {
		return fmt.Errorf("key %d has %d bytes, want 1..%d: %w", i, len(key), MaxKVKeyBytes, ErrInvalidArgument)
	}
	return nil
}
