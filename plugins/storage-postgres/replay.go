package storagepostgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sottonet/sotto/interfaces"
)

// replayTable is the quoted name of epoch's tag table.
func (s *Store) replayTable(epoch uint64) string {
	return s.schema + "." + pgx.Identifier{fmt.Sprintf("replay_%d", epoch)}.Sanitize()
}

// ensureEpoch creates epoch's tag table unless this store knows it
// exists. Creation is serialised in the process: concurrent CREATE TABLE
// IF NOT EXISTS of one name can fail on PostgreSQL's catalog.
func (s *Store) ensureEpoch(ctx context.Context, epoch uint64, force bool) error {
	s.epochMu.Lock()
	defer s.epochMu.Unlock()
	if s.epochs[epoch] && !force {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.replayTable(epoch)+` (tag bytea PRIMARY KEY)`); err != nil {
		return err
	}
	s.epochs[epoch] = true
	return nil
}

// InsertReplayTags implements interfaces.ReplayTags with one statement:
// INSERT ... ON CONFLICT DO NOTHING RETURNING tag into the epoch's table.
// The primary key decides: a tag the statement inserted is new, every
// other was there already. A single statement is its own transaction, so
// the batch is all or nothing and costs one round trip (the table's
// creation adds one, once per epoch and process). Of two concurrent
// batches holding a tag, the second waits for the first's row to commit
// and then skips it: exactly one reports it new. A tag repeated inside
// the batch is sent once and reported seen from its second occurrence.
func (s *Store) InsertReplayTags(ctx context.Context, req *interfaces.InsertReplayTagsRequest) (*interfaces.InsertReplayTagsResponse, error) {
	const op = "insert replay tags"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-postgres: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	seen := make([]bool, len(req.Tags))
	if len(req.Tags) == 0 {
		return &interfaces.InsertReplayTagsResponse{Seen: seen}, nil
	}
	first := make(map[interfaces.ReplayTag]int, len(req.Tags))
	distinct := make([][]byte, 0, len(req.Tags))
	for i, tg := range req.Tags {
		if _, dup := first[tg]; dup {
			seen[i] = true
			continue
		}
		first[tg] = i
		distinct = append(distinct, req.Tags[i][:])
	}
	if err := s.ensureEpoch(ctx, req.Epoch, false); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	q := `INSERT INTO ` + s.replayTable(req.Epoch) + ` (tag) SELECT unnest($1::bytea[]) ON CONFLICT DO NOTHING RETURNING tag`
	var inserted map[interfaces.ReplayTag]bool
	for attempt := 0; ; attempt++ {
		var err error
		inserted, err = s.insertTags(ctx, q, distinct)
		if err == nil {
			break
		}
		if pgCode(err) == "42P01" && attempt == 0 {
			// undefined_table: the epoch was dropped since this store
			// created it (by DropReplayEpoch, or by hand); a tag of a
			// dropped epoch is new again, as the contract says.
			if err := s.ensureEpoch(ctx, req.Epoch, true); err != nil {
				return nil, s.fail(ctx, op, err)
			}
			continue
		}
		return nil, s.fail(ctx, op, err)
	}
	for tg, i := range first {
		seen[i] = !inserted[tg]
	}
	return &interfaces.InsertReplayTagsResponse{Seen: seen}, nil
}

func (s *Store) insertTags(ctx context.Context, q string, tags [][]byte) (map[interfaces.ReplayTag]bool, error) {
	rows, err := s.pool.Query(ctx, q, tags)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	inserted := make(map[interfaces.ReplayTag]bool, len(tags))
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		var tg interfaces.ReplayTag
		if len(b) != len(tg) {
			return nil, fmt.Errorf("a stored tag of %d bytes", len(b))
		}
		copy(tg[:], b)
		inserted[tg] = true
	}
	return inserted, rows.Err()
}

// DropReplayEpoch implements interfaces.ReplayTags with DROP TABLE IF
// EXISTS: constant work whatever the epoch holds. It waits for inserts
// into that epoch in flight (the table's lock), not for other epochs.
func (s *Store) DropReplayEpoch(ctx context.Context, req *interfaces.DropReplayEpochRequest) (*interfaces.DropReplayEpochResponse, error) {
	const op = "drop replay epoch"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-postgres: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	s.epochMu.Lock()
	defer s.epochMu.Unlock()
	if _, err := s.pool.Exec(ctx, `DROP TABLE IF EXISTS `+s.replayTable(req.Epoch)); err != nil {
		return nil, s.fail(ctx, op, err)
	}
	delete(s.epochs, req.Epoch)
	return &interfaces.DropReplayEpochResponse{}, nil
}
