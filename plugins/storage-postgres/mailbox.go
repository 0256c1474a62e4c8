package storagepostgres

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/sottonet/sotto/interfaces"
)

// Mailbox list limits: a request's Limit of 0 gets the default, a larger
// one is cut to the maximum (the contract says "at most Limit").
const (
	defaultMailboxLimit = 100
	maxMailboxLimit     = 10000
)

// AppendMailbox implements interfaces.Mailboxes in one transaction: one
// statement advances the counter of every mailbox of the batch (an upsert
// of mailbox_counters, in mailbox order, so two batches lock counters in
// the same order and cannot deadlock), a second inserts every message
// with its ID. The counter row's lock, held to the commit, serialises
// appends to one mailbox; appends to others run concurrently. Counters
// are never deleted, so an ID is never handed out twice, even after its
// message was acknowledged or expired.
func (s *Store) AppendMailbox(ctx context.Context, req *interfaces.AppendMailboxRequest) (*interfaces.AppendMailboxResponse, error) {
	const op = "append mailbox"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-postgres: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	for i, m := range req.Messages {
		if m.Lifetime <= 0 {
			return nil, fmt.Errorf("storage-postgres: %s: message %d: lifetime %v is not positive: %w", op, i, m.Lifetime, interfaces.ErrInvalidArgument)
		}
		if len(m.Payload) > s.cfg.MaxValueBytes {
			return nil, fmt.Errorf("storage-postgres: %s: message %d: payload of %d bytes exceeds max_value_bytes %d: %w",
				op, i, len(m.Payload), s.cfg.MaxValueBytes, interfaces.ErrInvalidArgument)
		}
	}
	ids := make([]uint64, len(req.Messages))
	if len(req.Messages) == 0 {
		return &interfaces.AppendMailboxResponse{IDs: ids}, nil
	}
	count := map[interfaces.MailboxID]int64{}
	for _, m := range req.Messages {
		count[m.Mailbox]++
	}
	mbs := make([]interfaces.MailboxID, 0, len(count))
	for mb := range count {
		mbs = append(mbs, mb)
	}
	slices.SortFunc(mbs, func(a, b interfaces.MailboxID) int { return slices.Compare(a[:], b[:]) })
	cm, cn := make([][]byte, len(mbs)), make([]int64, len(mbs))
	for i, mb := range mbs {
		cm[i], cn[i] = mb[:], count[mb]
	}
	qCounters := `INSERT INTO ` + s.t("mailbox_counters") + ` AS c (mailbox, last_id)
		SELECT m, n FROM unnest($1::bytea[], $2::bigint[]) AS t(m, n) ORDER BY m
		ON CONFLICT (mailbox) DO UPDATE SET last_id = c.last_id + EXCLUDED.last_id
		RETURNING mailbox, last_id`
	qMessages := `INSERT INTO ` + s.t("messages") + ` (mailbox, id, expires, payload)
		SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::bytea[])`
	err := s.tx(ctx, op, false, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, qCounters, cm, cn)
		if err != nil {
			return err
		}
		next := make(map[interfaces.MailboxID]int64, len(mbs))
		for rows.Next() {
			var b []byte
			var last int64
			if err := rows.Scan(&b, &last); err != nil {
				rows.Close()
				return err
			}
			var mb interfaces.MailboxID
			copy(mb[:], b)
			next[mb] = last - count[mb] + 1
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		now := s.now()
		n := len(req.Messages)
		mm, mi, me, mp := make([][]byte, n), make([]int64, n), make([]int64, n), make([][]byte, n)
		for i, m := range req.Messages {
			id, ok := next[m.Mailbox]
			if !ok {
				return fmt.Errorf("the counter of a mailbox was not returned")
			}
			next[m.Mailbox] = id + 1
			ids[i] = uint64(id)
			mm[i], mi[i], me[i], mp[i] = req.Messages[i].Mailbox[:], id, expiresAt(now, m.Lifetime), nonNil(m.Payload)
		}
		_, err = tx.Exec(ctx, qMessages, mm, mi, me, mp)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &interfaces.AppendMailboxResponse{IDs: ids}, nil
}

// ListMailbox implements interfaces.Mailboxes: one indexed range read of
// the mailbox's live messages (expires > now), sizes by length(payload).
func (s *Store) ListMailbox(ctx context.Context, req *interfaces.ListMailboxRequest) (*interfaces.ListMailboxResponse, error) {
	const op = "list mailbox"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-postgres: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	entries, err := s.scanMailbox(ctx, op, req.Mailbox, req.After, req.Limit, 0, false)
	if err != nil {
		return nil, err
	}
	return &interfaces.ListMailboxResponse{Entries: entries}, nil
}

// FetchMailbox implements interfaces.Mailboxes. MaxBytes is applied in
// the query (a running sum of payload sizes), so payloads past it are
// never sent; the first message always is.
func (s *Store) FetchMailbox(ctx context.Context, req *interfaces.FetchMailboxRequest) (*interfaces.FetchMailboxResponse, error) {
	const op = "fetch mailbox"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-postgres: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	if req.MaxBytes < 0 {
		return nil, fmt.Errorf("storage-postgres: %s: max bytes %d is negative: %w", op, req.MaxBytes, interfaces.ErrInvalidArgument)
	}
	entries, err := s.scanMailbox(ctx, op, req.Mailbox, req.After, req.Limit, req.MaxBytes, true)
	if err != nil {
		return nil, err
	}
	return &interfaces.FetchMailboxResponse{Entries: entries}, nil
}

func (s *Store) scanMailbox(ctx context.Context, op string, mb interfaces.MailboxID, after uint64, limit, maxBytes int, payloads bool) ([]interfaces.MailboxEntry, error) {
	limit, err := clampLimit(limit, defaultMailboxLimit, maxMailboxLimit)
	if err != nil {
		return nil, fmt.Errorf("storage-postgres: %s: %w", op, err)
	}
	entries := []interfaces.MailboxEntry{}
	if after >= math.MaxInt64 { // IDs are bigint: none lies above
		return entries, nil
	}
	var rows pgx.Rows
	if payloads {
		rows, err = s.pool.Query(ctx, `SELECT id, expires, payload FROM (
				SELECT id, expires, payload,
					sum(length(payload)) OVER (ORDER BY id) AS running,
					row_number() OVER (ORDER BY id) AS rn
				FROM `+s.t("messages")+` WHERE mailbox = $1 AND id > $2 AND expires > $3
				ORDER BY id LIMIT $4) w
			WHERE rn = 1 OR $5::bigint = 0 OR running <= $5::bigint ORDER BY id`,
			mb[:], int64(after), s.now().Unix(), limit, int64(maxBytes))
	} else {
		rows, err = s.pool.Query(ctx, `SELECT id, expires, length(payload) FROM `+s.t("messages")+`
			WHERE mailbox = $1 AND id > $2 AND expires > $3 ORDER BY id LIMIT $4`,
			mb[:], int64(after), s.now().Unix(), limit)
	}
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, exp int64
		var e interfaces.MailboxEntry
		if payloads {
			var p []byte
			if err := rows.Scan(&id, &exp, &p); err != nil {
				return nil, s.fail(ctx, op, err)
			}
			e.Payload, e.Size = nonNil(p), len(p)
		} else {
			var size int64
			if err := rows.Scan(&id, &exp, &size); err != nil {
				return nil, s.fail(ctx, op, err)
			}
			e.Size = int(size)
		}
		e.ID = uint64(id)
		e.Expires = unixTime(exp)
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	return entries, nil
}

// AckMailbox implements interfaces.Mailboxes with one DELETE; Deleted
// counts the deleted rows that had not expired yet. An ID named twice
// counts once.
func (s *Store) AckMailbox(ctx context.Context, req *interfaces.AckMailboxRequest) (*interfaces.AckMailboxResponse, error) {
	const op = "ack mailbox"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-postgres: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	ids := make([]int64, 0, len(req.IDs))
	for _, id := range req.IDs {
		if id <= math.MaxInt64 {
			ids = append(ids, int64(id))
		}
	}
	if len(ids) == 0 {
		return &interfaces.AckMailboxResponse{}, nil
	}
	now := s.now().Unix()
	rows, err := s.pool.Query(ctx, `DELETE FROM `+s.t("messages")+` WHERE mailbox = $1 AND id = ANY($2::bigint[]) RETURNING expires`, req.Mailbox[:], ids)
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	defer rows.Close()
	deleted := 0
	for rows.Next() {
		var exp int64
		if err := rows.Scan(&exp); err != nil {
			return nil, s.fail(ctx, op, err)
		}
		if exp > now {
			deleted++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	return &interfaces.AckMailboxResponse{Deleted: deleted}, nil
}
