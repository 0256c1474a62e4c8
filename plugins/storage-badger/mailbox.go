package storagebadger

import (
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

// AppendMailbox implements interfaces.Mailboxes. The per-mailbox ID
// counter is read and advanced in the same transaction as the messages,
// so a crash can never hand out an ID twice; IDs start at 1. Appends that
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
				var err error
				if last, err = readCounter(txn, m.Mailbox); err != nil {
					return err
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

func readCounter(txn *badger.Txn, mb interfaces.MailboxID) (uint64, error) {
	item, err := txn.Get(counterKey(mb))
	if err == badger.ErrKeyNotFound {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var last uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("corrupt ID counter for mailbox %x: %d bytes", mb[:4], len(v))
		}
		last = binary.BigEndian.Uint64(v)
		return nil
	})
	return last, err
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
	var deleted int
	err := s.update(ctx, op, func(txn *badger.Txn) error {
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
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &interfaces.AckMailboxResponse{Deleted: deleted}, nil
}
