package storagebadger

import (
	"context"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/sottonet/sotto/interfaces"
)

// InsertReplayTags implements interfaces.ReplayTags: one transaction reads
// every tag and writes the new ones. A transaction sees its own pending
// writes, so a tag repeated inside the batch is found by its second Get
// and reported seen. Two concurrent batches holding the same tag conflict;
// the loser retries and then finds the tag, so exactly one of them reports
// it new.
func (s *Store) InsertReplayTags(ctx context.Context, req *interfaces.InsertReplayTagsRequest) (*interfaces.InsertReplayTagsResponse, error) {
	const op = "insert replay tags"
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
	seen := make([]bool, len(req.Tags))
	if len(req.Tags) == 0 {
		return &interfaces.InsertReplayTagsResponse{Seen: seen}, nil
	}
	err := s.update(ctx, op, func(txn *badger.Txn) error {
		for i, tag := range req.Tags {
			key := replayKey(req.Epoch, tag)
			_, err := txn.Get(key)
			switch {
			case err == nil:
				seen[i] = true
				continue
			case err != badger.ErrKeyNotFound:
				return err
			}
			seen[i] = false
			if err := txn.Set(key, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &interfaces.InsertReplayTagsResponse{Seen: seen}, nil
}

// DropReplayEpoch implements interfaces.ReplayTags with Badger's
// DropPrefix, which removes the whole epoch without reading it. DropPrefix
// blocks writes to the database while it runs (it flushes the memtable),
// so it is meant for the rare epoch change, not the hot path; writes that
// arrive meanwhile wait for it (dropMu) instead of failing.
func (s *Store) DropReplayEpoch(ctx context.Context, req *interfaces.DropReplayEpochRequest) (*interfaces.DropReplayEpochResponse, error) {
	const op = "drop replay epoch"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if req == nil {
		return nil, fmt.Errorf("storage-badger: %s: nil request: %w", op, interfaces.ErrInvalidArgument)
	}
	s.dropMu.Lock()
	err := s.db.DropPrefix(replayPrefix(req.Epoch))
	s.dropMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("storage-badger: %s %d: badger: %w", op, req.Epoch, err)
	}
	return &interfaces.DropReplayEpochResponse{}, nil
}
