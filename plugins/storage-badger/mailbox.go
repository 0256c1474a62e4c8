package storagebadger

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/sottonet/sotto/interfaces"
)

// Mailbox list limits: a request's Limit of 0 gets the default, a larger
// one is cut to the maximum (the contract says "at most Limit").
const (
	defaultMailboxLimit = 100
	maxMailboxLimit     = 10000
)

// expiresAt turns a lifetime into Badger's ExpiresAt (Unix seconds). It
// rounds up, so a message never expires before its lifetime; it may live
// up to one second longer (Badger's TTL granularity).
func expiresAt(now time.Time, lifetime time.Duration) uint64 {
	end := now.Add(lifetime)
	sec := end.Unix()
	if end.Nanosecond() > 0 {
		sec++
	}
	if end.Before(now) { // overflow of a huge lifetime
		return math.MaxInt64
	}
	return uint64(sec)
}

func expiresTime(e uint64) time.Time {
	if e == 0 {
		return time.Time{}
	}
	return time.Unix(int64(e), 0)
}

// idTimeShift places a mailbox's first ID at its start time in Unix
// seconds times 2^20 (see firstID). IDs stay below 2^53 (exact in a
// JavaScript number) until the year 2242.
const idTimeShift = 20

// firstID is the first ID of a mailbox that has no counter: one never
// used, or one whose counter was reclaimed once it was empty. It is the
// start of the current second in units of 2^-20 s, so it is greater than
// every ID the mailbox handed out before (a counter is reclaimed only once
// its last ID lies in an earlier second, see reclaimIfEmpty), and greater
// than the floor, which keeps that true after the clock went back. The
// ID tells a client no more than its message's expiry already does (the
// second it was stored); a per-store counter would tell it how much
// everyone else receives.
func firstID(txn *badger.Txn, now time.Time) (uint64, error) {
	var start uint64
	if sec := now.Unix(); sec > 0 {
		start = uint64(sec) << idTimeShift
	}
	floor, err := readUint64(txn, floorKey)
	if err != nil {
		return 0, err
	}
	return max(start, floor+1), nil
}

// AppendMailbox implements interfaces.Mailboxes. The per-mailbox ID
// counter is read and advanced in the same transaction as the messages,
// so a crash can never hand out an ID twice; a mailbox's first ID comes
// from the clock (firstID) and the next ones grow by one. Appends that
// touch the same mailbox are serialised by stripe locks held until the
// commit, so they never conflict on the counter.
func (s *Store) AppendMailbox(ctx context.Context, req *interfaces.AppendMailboxRequest) (*interfaces.AppendMailboxResponse, error) {
	const op = "append mailbox"
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
	for i, m := range req.Messages {
		if m.Lifetime <= 0 {
			return nil, fmt.Errorf("storage-badger: %s: message %d: lifetime %v is not positive: %w", op, i, m.Lifetime, interfaces.ErrInvalidArgument)
		}
		if len(m.Payload) > s.cfg.MaxValueBytes {
			return nil, fmt.Errorf("storage-badger: %s: message %d: payload of %d bytes exceeds max_value_bytes %d: %w",
				op, i, len(m.Payload), s.cfg.MaxValueBytes, interfaces.ErrInvalidArgument)
		}
	}
	ids := make([]uint64, len(req.Messages))
	if len(req.Messages) == 0 {
		return &interfaces.AppendMailboxResponse{IDs: ids}, nil
	}
	unlock, err := s.lockMailboxes(ctx, req.Messages)
	if err != nil {
		return nil, fmt.Errorf("storage-badger: %s: waiting for a concurrent append: %w", op, err)
	}
	defer unlock()
	err = s.update(ctx, op, func(txn *badger.Txn) error {
		now := time.Now()
		next := make(map[interfaces.MailboxID]uint64)
		for i, m := range req.Messages {
			last, ok := next[m.Mailbox]
			if !ok {
				var (
					found bool
					err   error
				)
				if last, found, err = readCounter(txn, m.Mailbox); err != nil {
					return err
				}
				if !found {
					first, err := firstID(txn, s.idClock())
					if err != nil {
						return err
					}
					last = first - 1
				}
			}
			if last == math.MaxUint64 {
				return fmt.Errorf("mailbox IDs exhausted: %w", interfaces.ErrInvalidArgument)
			}
			id := last + 1
			next[m.Mailbox] = id
			ids[i] = id
			e := badger.NewEntry(messageKey(m.Mailbox, id), m.Payload)
			e.ExpiresAt = expiresAt(now, m.Lifetime)
			if err := txn.SetEntry(e); err != nil {
				return err
			}
		}
		for mb, last := range next {
			if err := txn.Set(counterKey(mb), binary.BigEndian.AppendUint64(nil, last)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &interfaces.AppendMailboxResponse{IDs: ids}, nil
}

// readCounter reads a mailbox's last ID; found is false when it has none.
func readCounter(txn *badger.Txn, mb interfaces.MailboxID) (last uint64, found bool, err error) {
	item, err := txn.Get(counterKey(mb))
	if err == badger.ErrKeyNotFound {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("corrupt ID counter for mailbox %x: %d bytes", mb[:4], len(v))
		}
		last = binary.BigEndian.Uint64(v)
		return nil
	})
	return last, err == nil, err
}

// readUint64 reads an 8-byte big-endian value; a missing key reads 0.
func readUint64(txn *badger.Txn, key []byte) (uint64, error) {
	item, err := txn.Get(key)
	if err == badger.ErrKeyNotFound {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var v uint64
	err = item.Value(func(b []byte) error {
		if len(b) != 8 {
			return fmt.Errorf("corrupt value of key %x: %d bytes", key, len(b))
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	})
	return v, err
}

// mailboxEmpty reports whether a mailbox holds no live message, as txn
// sees it (its own deletes included; Badger's iterator skips deleted and
// expired entries).
func mailboxEmpty(txn *badger.Txn, mb interfaces.MailboxID) bool {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = mailboxPrefix(mb)
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	it.Rewind()
	return !it.ValidForPrefix(opts.Prefix)
}

// reclaimIfEmpty deletes the ID counter of a mailbox that holds no live
// message, so that state does not grow with every mailbox ever used, and
// raises the floor to its last ID. It keeps a counter whose last ID lies
// in the current second or later (more than 2^20 appends in a second, or
// a clock that went back): the next firstID might not be above it yet.
// The caller holds the mailbox's stripe lock. It reports whether it
// reclaimed.
func reclaimIfEmpty(txn *badger.Txn, mb interfaces.MailboxID, now time.Time) (bool, error) {
	last, found, err := readCounter(txn, mb)
	if err != nil || !found {
		return false, err
	}
	if sec := now.Unix(); sec <= 0 || last>>idTimeShift >= uint64(sec) {
		return false, nil
	}
	if !mailboxEmpty(txn, mb) {
		return false, nil
	}
	floor, err := readUint64(txn, floorKey)
	if err != nil {
		return false, err
	}
	if last > floor {
		if err := txn.Set(floorKey, binary.BigEndian.AppendUint64(nil, last)); err != nil {
			return false, err
		}
	}
	return true, txn.Delete(counterKey(mb))
}

// reclaimBatch bounds the counters one reclaim transaction deletes.
const reclaimBatch = 256

// ReclaimMailboxes deletes the ID counters of every mailbox that holds no
// live message any more (all acknowledged or expired), in batches, and
// returns how many it deleted. The store runs it every GCInterval;
// AckMailbox already reclaims the mailbox it empties.
func (s *Store) ReclaimMailboxes(ctx context.Context) (int, error) {
	if err := s.enter(ctx, "reclaim mailboxes"); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	return s.reclaimMailboxes(ctx)
}

func (s *Store) reclaimMailboxes(ctx context.Context) (int, error) {
	const op = "reclaim mailboxes"
	total := 0
	after := []byte{spaceCounter}
	for {
		// Find candidates in a read-only pass, then delete them under
		// their stripe locks in a transaction that checks them again.
		var cands []interfaces.MailboxID
		err := s.view(op, func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte{spaceCounter}
			opts.PrefetchValues = false
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Seek(after); it.ValidForPrefix(opts.Prefix) && len(cands) < reclaimBatch; it.Next() {
				if err := ctx.Err(); err != nil {
					return err
				}
				key := it.Item().KeyCopy(nil)
				if bytes.Equal(key, after) {
					continue
				}
				after = key
				mb, ok := counterMailbox(key)
				if !ok {
					return fmt.Errorf("corrupt counter key %x", key)
				}
				if mailboxEmpty(txn, mb) {
					cands = append(cands, mb)
				}
			}
			return nil
		})
		if err != nil || len(cands) == 0 {
			return total, err
		}
		unlock, err := s.lockStripes(ctx, cands)
		if err != nil {
			return total, fmt.Errorf("storage-badger: %s: %w", op, err)
		}
		var n int
		err = s.update(ctx, op, func(txn *badger.Txn) error {
			n = 0
			now := s.idClock()
			for _, mb := range cands {
				ok, err := reclaimIfEmpty(txn, mb, now)
				if err != nil {
					return err
				}
				if ok {
					n++
				}
			}
			return nil
		})
		unlock()
		if err != nil {
			return total, err
		}
		total += n
		if len(cands) < reclaimBatch {
			return total, nil
		}
	}
}

// ListMailbox implements interfaces.Mailboxes.
func (s *Store) ListMailbox(ctx context.Context, req *interfaces.ListMailboxRequest) (*interfaces.ListMailboxResponse, error) {
	const op = "list mailbox"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-badger: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	entries, err := s.scanMailbox(ctx, op, req.Mailbox, req.After, req.Limit, 0, false)
	if err != nil {
		return nil, err
	}
	return &interfaces.ListMailboxResponse{Entries: entries}, nil
}

// FetchMailbox implements interfaces.Mailboxes.
func (s *Store) FetchMailbox(ctx context.Context, req *interfaces.FetchMailboxRequest) (*interfaces.FetchMailboxResponse, error) {
	const op = "fetch mailbox"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-badger: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	if req.MaxBytes < 0 {
		return nil, fmt.Errorf("storage-badger: %s: max bytes %d is negative: %w", op, req.MaxBytes, interfaces.ErrInvalidArgument)
	}
	entries, err := s.scanMailbox(ctx, op, req.Mailbox, req.After, req.Limit, req.MaxBytes, true)
	if err != nil {
		return nil, err
	}
	return &interfaces.FetchMailboxResponse{Entries: entries}, nil
}

// scanMailbox walks one mailbox from ID after+1 upwards. Badger's iterator
// already skips expired and deleted messages.
func (s *Store) scanMailbox(ctx context.Context, op string, mb interfaces.MailboxID, after uint64, limit, maxBytes int, payloads bool) ([]interfaces.MailboxEntry, error) {
	limit, err := clampLimit(limit, defaultMailboxLimit, maxMailboxLimit)
	if err != nil {
		return nil, fmt.Errorf("storage-badger: %s: %w", op, err)
	}
	if after == math.MaxUint64 {
		return []interfaces.MailboxEntry{}, nil
	}
	entries := []interfaces.MailboxEntry{}
	total := 0
	err = s.view(op, func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = mailboxPrefix(mb)
		opts.PrefetchValues = payloads
		opts.PrefetchSize = min(limit, opts.PrefetchSize) // a fetch of one reads one value
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(messageKey(mb, after+1)); it.ValidForPrefix(opts.Prefix) && len(entries) < limit; it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			id, ok := messageID(item.Key())
			if !ok {
				return fmt.Errorf("corrupt message key %x", item.Key())
			}
			e := interfaces.MailboxEntry{ID: id, Expires: expiresTime(item.ExpiresAt())}
			if payloads {
				v, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				if maxBytes > 0 && len(entries) > 0 && total+len(v) > maxBytes {
					break
				}
				if v == nil {
					v = []byte{}
				}
				e.Payload, e.Size = v, len(v)
				total += len(v)
			} else {
				// The value sits in the LSM tree (under the value
				// threshold), so its length costs no extra read.
				if err := item.Value(func(v []byte) error { e.Size = len(v); return nil }); err != nil {
					return err
				}
			}
			entries = append(entries, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// AckMailbox implements interfaces.Mailboxes. An ID named twice in one
// request counts once in Deleted.
func (s *Store) AckMailbox(ctx context.Context, req *interfaces.AckMailboxRequest) (*interfaces.AckMailboxResponse, error) {
	const op = "ack mailbox"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-badger: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	// The stripe lock keeps appends to this mailbox out while an ack
	// that empties it reclaims its counter.
	unlock, err := s.lockStripes(ctx, []interfaces.MailboxID{req.Mailbox})
	if err != nil {
		return nil, fmt.Errorf("storage-badger: %s: waiting for a concurrent append: %w", op, err)
	}
	defer unlock()
	var deleted int
	err = s.update(ctx, op, func(txn *badger.Txn) error {
		deleted = 0
		seen := make(map[uint64]bool, len(req.IDs))
		for _, id := range req.IDs {
			if seen[id] {
				continue
			}
			seen[id] = true
			key := messageKey(req.Mailbox, id)
			_, err := txn.Get(key)
			if err == badger.ErrKeyNotFound {
				continue
			}
			if err != nil {
				return err
			}
			deleted++
			if err := txn.Delete(key); err != nil {
				return err
			}
		}
		_, err := reclaimIfEmpty(txn, req.Mailbox, s.idClock())
		return err
	})
	if err != nil {
		return nil, err
	}
	return &interfaces.AckMailboxResponse{Deleted: deleted}, nil
}
