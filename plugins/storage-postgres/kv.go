package storagepostgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sottonet/sotto/interfaces"
)

// List limits, the same as storage-badger's; the contract's bounds on
// namespaces and keys are interfaces.MaxKV*.
const (
	defaultKVListLimit = 1000
	maxKVListLimit     = 10000
)

func unixTime(sec int64) time.Time { return time.Unix(sec, 0) }

// kvExpires is a KV row's expires column: 0 never expires.
func kvExpires(now time.Time, lifetime time.Duration) int64 {
	if lifetime == 0 {
		return 0
	}
	return expiresAt(now, lifetime)
}

func (s *Store) validKeys(op, ns string, keys [][]byte) error {
	if err := interfaces.CheckKVKeys(ns, keys); err != nil {
		return fmt.Errorf("storage-postgres: %s: %w", op, err)
	}
	return nil
}

// validEntry refuses entry i of a write whose key, value or lifetime is
// out of bounds (interfaces.CheckKVEntry, with max_value_bytes).
func (s *Store) validEntry(op string, i int, key, value []byte, lifetime time.Duration) error {
	if err := interfaces.CheckKVEntry(i, key, value, lifetime, s.cfg.MaxValueBytes); err != nil {
		return fmt.Errorf("storage-postgres: %s: %w (max_value_bytes)", op, err)
	}
	return nil
}

// KVPut implements interfaces.KV: one transaction, one upsert per entry,
// pipelined in one round trip. An IfAbsent entry is an upsert that
// overwrites only an expired row (ON CONFLICT ... WHERE expired), so it
// applies exactly when no live value is there: of concurrent IfAbsent
// puts of one key, the later waits for the earlier's row and is not
// applied. Entries apply in request order, so an IfAbsent entry after an
// entry of the same batch that wrote its key is not applied.
func (s *Store) KVPut(ctx context.Context, req *interfaces.KVPutRequest) (*interfaces.KVPutResponse, error) {
	const op = "kv put"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-postgres: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
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
	ns := []byte(req.Namespace)
	qPut := `INSERT INTO ` + s.t("kv") + ` AS k (ns, key, value, expires) VALUES ($1, $2, $3, $4)
		ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires`
	qIfAbsent := qPut + ` WHERE k.expires <> 0 AND k.expires <= $5 RETURNING true`
	err := s.tx(ctx, op, false, func(tx pgx.Tx) error {
		now := s.now()
		b := &pgx.Batch{}
		for _, e := range req.Entries {
			exp := kvExpires(now, e.Lifetime)
			if e.IfAbsent {
				b.Queue(qIfAbsent, ns, e.Key, nonNil(e.Value), exp, now.Unix())
			} else {
				b.Queue(qPut, ns, e.Key, nonNil(e.Value), exp)
			}
		}
		br := tx.SendBatch(ctx, b)
		for i, e := range req.Entries {
			if e.IfAbsent {
				var ok bool
				err := br.QueryRow().Scan(&ok)
				if err != nil && !errors.Is(err, pgx.ErrNoRows) {
					br.Close()
					return err
				}
				applied[i] = err == nil
				continue
			}
			if _, err := br.Exec(); err != nil {
				br.Close()
				return err
			}
			applied[i] = true
		}
		return br.Close()
	})
	if err != nil {
		return nil, err
	}
	return &interfaces.KVPutResponse{Applied: applied}, nil
}

// KVGet implements interfaces.KV with one read of the live keys.
func (s *Store) KVGet(ctx context.Context, req *interfaces.KVGetRequest) (*interfaces.KVGetResponse, error) {
	const op = "kv get"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-postgres: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	if err := s.validKeys(op, req.Namespace, req.Keys); err != nil {
		return nil, err
	}
	resp := &interfaces.KVGetResponse{Values: make([][]byte, len(req.Keys)), Found: make([]bool, len(req.Keys))}
	if len(req.Keys) == 0 {
		return resp, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT key, value FROM `+s.t("kv")+`
		WHERE ns = $1 AND key = ANY($2::bytea[]) AND (expires = 0 OR expires > $3)`,
		[]byte(req.Namespace), req.Keys, s.now().Unix())
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	defer rows.Close()
	got := map[string][]byte{}
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, s.fail(ctx, op, err)
		}
		got[string(k)] = nonNil(v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	for i, k := range req.Keys {
		if v, ok := got[string(k)]; ok {
			resp.Values[i], resp.Found[i] = bytes.Clone(v), true
		}
	}
	return resp, nil
}

// KVDelete implements interfaces.KV with one DELETE.
func (s *Store) KVDelete(ctx context.Context, req *interfaces.KVDeleteRequest) (*interfaces.KVDeleteResponse, error) {
	const op = "kv delete"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-postgres: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	if err := s.validKeys(op, req.Namespace, req.Keys); err != nil {
		return nil, err
	}
	if len(req.Keys) == 0 {
		return &interfaces.KVDeleteResponse{}, nil
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM `+s.t("kv")+` WHERE ns = $1 AND key = ANY($2::bytea[])`, []byte(req.Namespace), req.Keys); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	return &interfaces.KVDeleteResponse{}, nil
}

// prefixEnd is the smallest byte string greater than every string that
// starts with p, or nil when there is none (p empty or all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// KVList implements interfaces.KV: a range read of the namespace's
// primary key from max(Prefix, After+0x00) to the prefix's end. bytea
// compares bytewise, so the order is the contract's byte order.
func (s *Store) KVList(ctx context.Context, req *interfaces.KVListRequest) (*interfaces.KVListResponse, error) {
	const op = "kv list"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-postgres: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	if err := interfaces.CheckKVList(req); err != nil {
		return nil, fmt.Errorf("storage-postgres: %s: %w", op, err)
	}
	limit, err := clampLimit(req.Limit, defaultKVListLimit, maxKVListLimit)
	if err != nil {
		return nil, fmt.Errorf("storage-postgres: %s: %w", op, err)
	}
	start := nonNil(bytes.Clone(req.Prefix))
	if req.After != nil {
		if afterNext := append(bytes.Clone(req.After), 0); bytes.Compare(afterNext, start) > 0 {
			start = afterNext
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT key FROM `+s.t("kv")+`
		WHERE ns = $1 AND key >= $2 AND ($3::bytea IS NULL OR key < $3::bytea) AND (expires = 0 OR expires > $4)
		ORDER BY key LIMIT $5`, []byte(req.Namespace), start, prefixEnd(req.Prefix), s.now().Unix(), limit)
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	defer rows.Close()
	keys := [][]byte{}
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k); err != nil {
			return nil, s.fail(ctx, op, err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	return &interfaces.KVListResponse{Keys: keys}, nil
}

// KVSwap implements interfaces.KVSwapper in one transaction: it locks the
// batch's existing rows (SELECT ... ORDER BY key FOR UPDATE, so two swaps
// lock in the same order), decides every entry against a staged view, and
// writes the final state of each key it changed: UPDATE or DELETE of a
// locked row, plain INSERT of a key that had no row. If a concurrent swap
// inserts that key first, the INSERT fails on the primary key and the
// whole transaction runs again, so every comparison sees the value it
// replaces.
func (s *Store) KVSwap(ctx context.Context, req *interfaces.KVSwapRequest) (*interfaces.KVSwapResponse, error) {
	const op = "kv swap"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-postgres: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	if err := s.validKeys(op, req.Namespace, nil); err != nil {
		return nil, err
	}
	for i, e := range req.Entries {
		if err := s.validEntry(op, i, e.Key, e.Value, e.Lifetime); err != nil {
			return nil, err
		}
		if e.Delete && len(e.Value) > 0 {
			return nil, fmt.Errorf("storage-postgres: %s: entry %d: a delete with a value: %w", op, i, interfaces.ErrInvalidArgument)
		}
	}
	n := len(req.Entries)
	resp := &interfaces.KVSwapResponse{Applied: make([]bool, n), Current: make([][]byte, n), Found: make([]bool, n)}
	if n == 0 {
		return resp, nil
	}
	ns := []byte(req.Namespace)
	keys := make([][]byte, n)
	for i, e := range req.Entries {
		keys[i] = e.Key
	}
	type view struct {
		value []byte
		found bool
	}
	type final struct {
		entry int // the last applied entry of the key
		del   bool
	}
	err := s.tx(ctx, op, true, func(tx pgx.Tx) error {
		clear(resp.Applied)
		clear(resp.Current)
		clear(resp.Found)
		now := s.now()
		rows, err := tx.Query(ctx, `SELECT key, value, expires FROM `+s.t("kv")+`
			WHERE ns = $1 AND key = ANY($2::bytea[]) ORDER BY key FOR UPDATE`, ns, keys)
		if err != nil {
			return err
		}
		stored := map[string]view{}
		hasRow := map[string]bool{}
		for rows.Next() {
			var k, v []byte
			var exp int64
			if err := rows.Scan(&k, &v, &exp); err != nil {
				rows.Close()
				return err
			}
			hasRow[string(k)] = true
			if exp == 0 || exp > now.Unix() {
				stored[string(k)] = view{value: nonNil(v), found: true}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		staged := map[string]view{}
		compared := make([]view, n)
		failed := false
		for i, e := range req.Entries {
			k := string(e.Key)
			cur, ok := staged[k]
			if !ok {
				cur = stored[k]
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
				staged[k] = view{}
			} else {
				staged[k] = view{value: e.Value, found: true}
			}
		}
		if failed && req.All {
			clear(resp.Applied)
		}
		finals := map[string]final{}
		var order []string
		for i, e := range req.Entries {
			if !resp.Applied[i] {
				if compared[i].found {
					resp.Current[i], resp.Found[i] = compared[i].value, true
				}
				continue
			}
			k := string(e.Key)
			if _, ok := finals[k]; !ok {
				order = append(order, k)
			}
			finals[k] = final{entry: i, del: e.Delete}
		}
		if len(order) == 0 {
			return nil
		}
		b := &pgx.Batch{}
		for _, k := range order {
			f := finals[k]
			e := req.Entries[f.entry]
			switch {
			case f.del:
				b.Queue(`DELETE FROM `+s.t("kv")+` WHERE ns = $1 AND key = $2`, ns, e.Key)
			case hasRow[k]:
				b.Queue(`UPDATE `+s.t("kv")+` SET value = $3, expires = $4 WHERE ns = $1 AND key = $2`,
					ns, e.Key, nonNil(e.Value), kvExpires(now, e.Lifetime))
			default:
				b.Queue(`INSERT INTO `+s.t("kv")+` (ns, key, value, expires) VALUES ($1, $2, $3, $4)`,
					ns, e.Key, nonNil(e.Value), kvExpires(now, e.Lifetime))
			}
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}
