package storagepostgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sottonet/sotto/interfaces"
)

// maxAttempts bounds the retries of a transaction that lost to a
// concurrent one (serialization failure, deadlock, or a KVSwap whose
// absent key another swap inserted first).
const maxAttempts = 64

// Store is the PostgreSQL-backed interfaces.Storage. Safe for concurrent
// use.
type Store struct {
	pool   *pgxpool.Pool
	cfg    Config
	schema string // quoted, ready to prefix a table name

	// mu guards closed; every call holds it for reading so that Close
	// waits for calls in flight.
	mu     sync.RWMutex
	closed bool

	// epochs caches the replay epochs whose table is known to exist;
	// epochMu serialises their creation and drops.
	epochMu sync.Mutex
	epochs  map[uint64]bool

	stopExpiry context.CancelFunc
	expiryDone sync.WaitGroup

	// now is the clock of lifetimes; tests do not replace it.
	now func() time.Time
}

var (
	_ interfaces.Storage   = (*Store)(nil)
	_ interfaces.KVSwapper = (*Store)(nil)
)

// Open connects to the database cfg names, creates or migrates its schema
// and starts the background expiry. A database it cannot reach within
// cfg.ConnectTimeout is an error wrapping interfaces.ErrUnavailable that
// names host, port, database and user (never the password); a schema newer
// than this plugin knows is refused.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgconn's parse errors already redact the password; say no more
		// than that the DSN is bad.
		return nil, fmt.Errorf("%w: dsn: %v", ErrConfig, redact(err.Error(), cfg.DSN))
	}
	pc.MaxConns = cfg.MaxConns
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	pc.ConnConfig.RuntimeParams["application_name"] = "sotto-storage-postgres"
	if !cfg.SynchronousCommit {
		pc.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	}
	where := fmt.Sprintf("host %s port %d database %q user %q", pc.ConnConfig.Host, pc.ConnConfig.Port, pc.ConnConfig.Database, pc.ConnConfig.User)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("storage-postgres: connecting to %s: %w: %v", where, interfaces.ErrUnavailable, redact(err.Error(), cfg.DSN))
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	err = pool.Ping(pctx)
	cancel()
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("storage-postgres: cannot reach the database (%s): %w: %v", where, interfaces.ErrUnavailable, redact(err.Error(), cfg.DSN))
	}
	s := &Store{pool: pool, cfg: cfg, schema: pgx.Identifier{cfg.Schema}.Sanitize(), epochs: map[uint64]bool{}, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	// What a session actually got: sslmode=prefer (libpq's default) may
	// fall back to a plain connection.
	tls := "unknown"
	var on bool
	if err := pool.QueryRow(ctx, `SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&on); err == nil {
		tls = strconv.FormatBool(on)
	}
	cfg.Logger.Info("storage-postgres opened", "host", pc.ConnConfig.Host, "port", pc.ConnConfig.Port,
		"database", pc.ConnConfig.Database, "user", pc.ConnConfig.User, "schema", cfg.Schema, "tls", tls,
		"synchronous_commit", cfg.SynchronousCommit)
	ectx, stop := context.WithCancel(context.Background())
	s.stopExpiry = stop
	if cfg.ExpiryInterval > 0 {
		s.expiryDone.Go(func() { s.expiryLoop(ectx) })
	}
	return s, nil
}

// redact removes the DSN's password from a message, should a driver error
// ever quote it.
func redact(msg, dsn string) string {
	if dsn == "" {
		return msg
	}
	if c, err := pgconn.ParseConfig(dsn); err == nil && c.Password != "" {
		msg = strings.ReplaceAll(msg, c.Password, "xxxxx")
	}
	return msg
}

// Close stops the expiry, waits for calls in flight and closes the pool.
// Calls after Close fail with interfaces.ErrUnavailable. Closing twice is
// not an error.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.stopExpiry()
	s.expiryDone.Wait()
	s.pool.Close()
	return nil
}

// t names a table of the store's schema.
func (s *Store) t(name string) string { return s.schema + "." + name }

// enter starts a call: it fails when the store is closed or ctx is done.
// On success the caller must call s.mu.RUnlock.
func (s *Store) enter(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage-postgres: %s: %w", op, err)
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("storage-postgres: %s: store closed: %w", op, interfaces.ErrUnavailable)
	}
	return nil
}

// fail maps a database error to the contract's: the context's own error
// when it ended, ErrInvalidArgument for a value the database refused as
// data, and ErrUnavailable for everything else (connection lost, server
// restarting, out of resources): the same request may succeed later.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("storage-postgres: %s: %w (%v)", op, cerr, redact(err.Error(), s.cfg.DSN))
	}
	if errors.Is(err, interfaces.ErrInvalidArgument) {
		return fmt.Errorf("storage-postgres: %s: %w", op, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || pe.Code == "54000") {
		return fmt.Errorf("storage-postgres: %s: the database refused the request (%s %s): %w", op, pe.Code, pe.Message, interfaces.ErrInvalidArgument)
	}
	return fmt.Errorf("storage-postgres: %s: %w: %v", op, interfaces.ErrUnavailable, redact(err.Error(), s.cfg.DSN))
}

// pgCode is the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// retryable: the transaction lost to a concurrent one and may run again.
func retryable(err error, alsoUnique bool) bool {
	switch pgCode(err) {
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return true
	case "23505": // unique_violation
		return alsoUnique
	}
	return false
}

// tx runs fn in one transaction and commits it, running it again from the
// start when it lost to a concurrent transaction (retryable). fn must not
// keep results of an attempt that did not commit. Once the commit is sent
// a cancelled context can no longer undo it; if the connection drops
// during the commit the outcome is unknown and the call fails with
// ErrUnavailable, as with any database.
func (s *Store) tx(ctx context.Context, op string, alsoUnique bool, fn func(tx pgx.Tx) error) error {
	var err error
	for attempt := range maxAttempts {
		if attempt > 0 {
			pause := time.Duration(rand.Int64N(int64(min(attempt, 20)) * int64(200*time.Microsecond)))
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
		}
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("storage-postgres: %s: %w", op, cerr)
		}
		err = pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil || !retryable(err, alsoUnique) {
			break
		}
	}
	if err == nil {
		return nil
	}
	if retryable(err, alsoUnique) {
		return fmt.Errorf("storage-postgres: %s: still conflicting after %d attempts: %w", op, maxAttempts, interfaces.ErrUnavailable)
	}
	return s.fail(ctx, op, err)
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

// expiresAt turns a lifetime into whole Unix seconds, rounded up so that
// nothing expires before its lifetime (like storage-badger). A row is
// live while expires > now (in Unix seconds).
func expiresAt(now time.Time, lifetime time.Duration) int64 {
	end := now.Add(lifetime)
	if end.Before(now) {
		return math.MaxInt64
	}
	sec := end.Unix()
	if end.Nanosecond() > 0 {
		sec++
	}
	return sec
}

// nonNil turns a nil slice into an empty one: pgx sends nil as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// expiryLoop deletes expired messages and KV entries every
// ExpiryInterval, ExpiryBatch rows per statement, until a statement finds
// fewer or Close begins. Expired rows are already invisible to every
// call; this only reclaims their space.
func (s *Store) expiryLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.ExpireNow(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.cfg.Logger.Warn("storage-postgres: deleting expired rows", "err", err)
		case n > 0:
			s.cfg.Logger.Debug("storage-postgres: deleted expired rows", "count", n)
		}
	}
}

// ExpireNow runs one pass of the background expiry and returns the rows
// it deleted. Each statement deletes at most ExpiryBatch rows, so no
// statement holds many locks or runs long.
func (s *Store) ExpireNow(ctx context.Context) (int64, error) {
	var total int64
	for _, q := range []string{
		`DELETE FROM ` + s.t("messages") + ` WHERE (mailbox, id) IN (SELECT mailbox, id FROM ` + s.t("messages") + ` WHERE expires <= $1 LIMIT $2)`,
		`DELETE FROM ` + s.t("kv") + ` WHERE (ns, key) IN (SELECT ns, key FROM ` + s.t("kv") + ` WHERE expires <> 0 AND expires <= $1 LIMIT $2)`,
	} {
		for {
			tag, err := s.pool.Exec(ctx, q, s.now().Unix(), s.cfg.ExpiryBatch)
			if err != nil {
				return total, err
			}
			total += tag.RowsAffected()
			if tag.RowsAffected() < int64(s.cfg.ExpiryBatch) {
				break
			}
			if ctx.Err() != nil {
				return total, ctx.Err()
			}
		}
	}
	return total, nil
}
