package storagebadger

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/sottonet/sotto/interfaces"
)

// maxAttempts bounds the retries of a transaction that lost a write
// conflict to a concurrent one (same tag or KV key; mailbox counters are
// serialised by stripe locks instead, see AppendMailbox).
const maxAttempts = 64

// mailboxStripes is the number of locks that serialise appends to the same
// mailbox. Optimistic retries alone livelock when many writers append to
// one hot mailbox: each attempt reads the counter, and all but one lose.
const mailboxStripes = 256

// Store is the Badger-backed interfaces.Storage. Safe for concurrent use.
type Store struct {
	db  *badger.DB
	cfg Config

	// mu guards closed; every call holds it for reading so that Close
	// waits for calls in flight instead of pulling the DB from under them.
	mu     sync.RWMutex
	closed bool

	// stripes serialise appends per mailbox (by hash), from the counter
	// read to the commit; appends to different stripes still commit
	// concurrently and share Badger's group fsync.
	// dropMu keeps writes out while DropPrefix runs: Badger refuses every
	// commit during a drop (ErrBlockedWrites) and a second concurrent drop
	// too. Writes hold it for reading, DropReplayEpoch for writing.
	dropMu sync.RWMutex

	// Each stripe is a one-slot semaphore rather than a mutex so that a
	// caller whose context ends while it waits gives up.
	stripes [mailboxStripes]chan struct{}
	seed    maphash.Seed

	stopGC chan struct{}
	gcDone sync.WaitGroup
	gcRuns atomic.Uint64 // value-log GC passes, for tests

	// idClock is the clock of mailbox IDs and reclaims (firstID,
	// reclaimIfEmpty): time.Now; tests replace it. Lifetimes always
	// follow the real clock, as Badger's expiry does.
	idClock func() time.Time
}

var _ interfaces.Storage = (*Store)(nil)

// Open opens (or creates) the database in cfg.Dir. Zero sizes in cfg take
// their defaults; SyncWrites is taken as given (see Config).
func Open(cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := privateDir(cfg.Dir, cfg.Logger); err != nil {
		return nil, err
	}
	opts := badger.DefaultOptions(cfg.Dir).
		WithSyncWrites(cfg.SyncWrites).
		// WithLoggingLevel would replace the logger with a stderr one; slog
		// filters levels instead.
		WithLogger(slogAdapter{cfg.Logger}).
		WithNumVersionsToKeep(1).
		WithMemTableSize(cfg.MemTableBytes).
		WithBlockCacheSize(cfg.CacheBytes).
		// Badger's default threshold (1 MiB) is refused with a small
		// memtable; values under it stay in the LSM tree.
		WithValueThreshold(min(int64(1<<20), cfg.MemTableBytes*15/100))
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("storage-badger: opening %s: %w", cfg.Dir, err)
	}
	cfg.Logger.Debug("storage-badger opened", "dir", cfg.Dir, "sync_writes", cfg.SyncWrites)
	s := &Store{db: db, cfg: cfg, seed: maphash.MakeSeed(), stopGC: make(chan struct{}), idClock: time.Now}
	s.privateFiles()
	for i := range s.stripes {
		s.stripes[i] = make(chan struct{}, 1)
	}
	if cfg.GCInterval > 0 {
		s.gcDone.Go(s.gcLoop)
	}
	return s, nil
}

// Close flushes and closes the database. Calls after Close fail with
// interfaces.ErrUnavailable. Closing twice is not an error.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.stopGC)
	s.gcDone.Wait()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("storage-badger: closing: %w", err)
	}
	s.privateFiles()
	return nil
}

// Files and directories the store creates are its owner's alone: the
// database holds every client's mailbox. Badger creates its directory
// 0700 but some of its files (value log, tables, memtables, LOCK) 0644,
// with no option to change that.
const (
	dirMode  os.FileMode = 0o700
	fileMode os.FileMode = 0o600
)

// privateDir creates dir with dirMode, or narrows an existing one to it,
// so that no other user reaches the files inside, whatever their modes.
func privateDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("storage-badger: creating %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("storage-badger: %w", err)
	}
	if fi.Mode().Perm()&^dirMode != 0 {
		if err := os.Chmod(dir, dirMode); err != nil {
			return fmt.Errorf("storage-badger: narrowing %s to %v: %w", dir, dirMode, err)
		}
		log.Debug("storage-badger: database directory narrowed to its owner", "dir", dir, "was", fi.Mode().Perm(), "now", dirMode)
	}
	return nil
}

// privateFiles narrows every file of the database directory to fileMode.
// It runs at open, every GCInterval and at close; files Badger creates in
// between are already out of other users' reach (privateDir).
func (s *Store) privateFiles() {
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		s.cfg.Logger.Warn("storage-badger: listing the database directory", "err", err)
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Mode().Perm()&^fileMode == 0 {
			continue // gone meanwhile (a compaction), or private already
		}
		if err := os.Chmod(filepath.Join(s.cfg.Dir, e.Name()), fileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.cfg.Logger.Warn("storage-badger: narrowing a database file", "file", e.Name(), "err", err)
		}
	}
}

// enter starts a call: it fails when the store is closed or ctx is done.
// On success the caller must call s.mu.RUnlock.
func (s *Store) enter(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage-badger: %s: %w", op, err)
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("storage-badger: %s: store closed: %w", op, interfaces.ErrUnavailable)
	}
	return nil
}

// update runs fn in a read-write transaction and commits it, retrying on
// write conflicts. fn may run several times and must not keep results of
// an attempt that did not commit. ctx is checked before every attempt and
// just before the commit; once the commit starts it runs to completion, so
// a cancelled call has either written everything or nothing.
func (s *Store) update(ctx context.Context, op string, fn func(txn *badger.Txn) error) error {
	var err error
	for attempt := range maxAttempts {
		if attempt > 0 {
			// A jittered, growing pause lets the winner of the conflict
			// finish instead of colliding with it again.
			pause := time.Duration(rand.Int64N(int64(min(attempt, 20)) * int64(50*time.Microsecond)))
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
		}
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("storage-badger: %s: %w", op, cerr)
		}
		err = s.tryUpdate(ctx, fn)
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrTxnTooBig):
		return fmt.Errorf("storage-badger: %s: batch exceeds one atomic Badger transaction (memtable_bytes %d): %w",
			op, s.cfg.MemTableBytes, interfaces.ErrInvalidArgument)
	case errors.Is(err, badger.ErrConflict):
		return fmt.Errorf("storage-badger: %s: still conflicting after %d attempts: %w", op, maxAttempts, interfaces.ErrUnavailable)
	case errors.Is(err, interfaces.ErrInvalidArgument), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("storage-badger: %s: %w", op, err)
	default:
		return fmt.Errorf("storage-badger: %s: badger: %w", op, err)
	}
}

func (s *Store) tryUpdate(ctx context.Context, fn func(txn *badger.Txn) error) error {
	s.dropMu.RLock()
	defer s.dropMu.RUnlock()
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := fn(txn); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return txn.Commit()
}

// view runs fn in a read-only transaction.
func (s *Store) view(op string, fn func(txn *badger.Txn) error) error {
	if err := s.db.View(fn); err != nil {
		if errors.Is(err, interfaces.ErrInvalidArgument) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("storage-badger: %s: %w", op, err)
		}
		return fmt.Errorf("storage-badger: %s: badger: %w", op, err)
	}
	return nil
}

// clampLimit turns a request's Limit into the number of entries to return.
func clampLimit(limit, def, maxLimit int) (int, error) {
	switch {
	case limit < 0:
		return 0, fmt.Errorf("limit %d is negative: %w", limit, interfaces.ErrInvalidArgument)
	case limit == 0:
		return def, nil
	case limit > maxLimit:
		return maxLimit, nil
	}
	return limit, nil
}

// lockMailboxes locks the stripes of every mailbox in msgs (lockStripes).
func (s *Store) lockMailboxes(ctx context.Context, msgs []interfaces.MailboxMessage) (unlock func(), err error) {
	mbs := make([]interfaces.MailboxID, len(msgs))
	for i, m := range msgs {
		mbs[i] = m.Mailbox
	}
	return s.lockStripes(ctx, mbs)
}

// lockStripes locks the stripes of every mailbox in mbs, in ascending
// stripe order so that two batches can never deadlock, and returns the
// unlock function. It gives up, holding nothing, when ctx ends first.
func (s *Store) lockStripes(ctx context.Context, mbs []interfaces.MailboxID) (unlock func(), err error) {
	idx := make([]int, 0, min(len(mbs), mailboxStripes))
	for _, mb := range mbs {
		i := int(maphash.Bytes(s.seed, mb[:]) % mailboxStripes)
		if !slices.Contains(idx, i) {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	release := func(n int) {
		for _, i := range idx[:n] {
			<-s.stripes[i]
		}
	}
	for n, i := range idx {
		select {
		case s.stripes[i] <- struct{}{}:
		case <-ctx.Done():
			release(n)
			return nil, ctx.Err()
		}
	}
	return func() { release(len(idx)) }, nil
}

// gcLoop garbage-collects the value log every GCInterval: deleted and
// expired values of 1 MiB or more stay in it until a rewrite, which
// compactions alone never do.
func (s *Store) gcLoop() {
	t := time.NewTicker(s.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopGC:
			return
		case <-t.C:
		}
		s.privateFiles()
		s.reclaimEmpty()
		// Rewrite files while at least half of one is garbage; stop at the
		// first pass with nothing to do, or when Close begins.
		for {
			err := s.db.RunValueLogGC(0.5)
			s.gcRuns.Add(1)
			if err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
					s.cfg.Logger.Warn("storage-badger: value log GC", "err", err)
				}
				break
			}
			select {
			case <-s.stopGC:
				return
			default:
			}
		}
	}
}

// reclaimEmpty is the periodic ReclaimMailboxes. It runs on the GC
// goroutine, which Close stops before it closes the database, so it does
// not take the store's lock (Close holds it while it waits for the GC
// goroutine); Close cancels it.
func (s *Store) reclaimEmpty() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stopGC:
			cancel()
		case <-ctx.Done():
		}
	}()
	n, err := s.reclaimMailboxes(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		s.cfg.Logger.Warn("storage-badger: reclaiming empty mailboxes", "err", err)
	case n > 0:
		s.cfg.Logger.Debug("storage-badger: reclaimed empty mailboxes", "count", n)
	}
}
