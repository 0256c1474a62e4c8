package storagepostgres

import (
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/sottonet/sotto/interfaces"
)

// Defaults applied by ParseConfig and DefaultConfig.
const (
	DefaultSchema         = "sotto"
	DefaultMaxValueBytes  = 1 << 20 // 1 MiB per payload or KV value
	DefaultMaxConns       = 8
	DefaultExpiryInterval = time.Minute
	DefaultExpiryBatch    = 1000
	DefaultConnectTimeout = 10 * time.Second

	maxMaxValueBytes = 64 << 20
)

// ErrConfig is wrapped by every configuration error. It wraps
// interfaces.ErrInvalidArgument, so a host that configures the plugin with
// bad JSON sees that sentinel across the gRPC boundary.
var ErrConfig = fmt.Errorf("storage-postgres: invalid config: %w", interfaces.ErrInvalidArgument)

// Config configures a Store. Build it with ParseConfig (from the plugin's
// raw JSON) or DefaultConfig.
type Config struct {
	// DSN is a libpq connection string or URL (postgres://...). Empty: the
	// standard PG* environment variables (PGHOST, PGUSER, PGPASSWORD,
	// PGSSLMODE...) and libpq's defaults. TLS follows its sslmode. It
	// carries credentials: it is never logged.
	DSN string `json:"dsn"`
	// Schema is the PostgreSQL schema holding this store's tables,
	// created if missing. Nodes sharing one database use one schema each.
	Schema string `json:"schema"`
	// MaxConns bounds the connection pool.
	MaxConns int32 `json:"max_conns"`
	// MaxValueBytes bounds one mailbox payload or KV value.
	MaxValueBytes int `json:"max_value_bytes"`
	// SynchronousCommit off makes the session's commits return before
	// the WAL reaches disk (PostgreSQL's synchronous_commit = off): a crash
	// of the database server (not of the node) may lose the last commits,
	// never half of one. Default true: the server's own setting applies.
	SynchronousCommit bool `json:"synchronous_commit"`
	// ExpiryInterval is the period of the background deletion of expired
	// messages and KV entries (expired ones are invisible at once). Zero
	// disables it. In JSON a Go duration string such as "1m".
	ExpiryInterval time.Duration `json:"-"`
	// ExpiryBatch bounds the rows one expiry statement deletes.
	ExpiryBatch int `json:"expiry_batch"`
	// ConnectTimeout bounds the first connection at Open (and each later
	// connection attempt).
	ConnectTimeout time.Duration `json:"-"`
	// Logger receives the store's logs. Default slog.Default(). Not in JSON.
	Logger *slog.Logger `json:"-"`
}

// DefaultConfig returns the defaults, connecting with dsn.
func DefaultConfig(dsn string) Config {
	return Config{
		DSN:               dsn,
		Schema:            DefaultSchema,
		MaxConns:          DefaultMaxConns,
		MaxValueBytes:     DefaultMaxValueBytes,
		SynchronousCommit: true,
		ExpiryInterval:    DefaultExpiryInterval,
		ExpiryBatch:       DefaultExpiryBatch,
		ConnectTimeout:    DefaultConnectTimeout,
	}
}

type rawConfig struct {
	DSN               *string `json:"dsn"`
	Schema            *string `json:"schema"`
	MaxConns          *int32  `json:"max_conns"`
	MaxValueBytes     *int    `json:"max_value_bytes"`
	SynchronousCommit *bool   `json:"synchronous_commit"`
	ExpiryInterval    *string `json:"expiry_interval"`
	ExpiryBatch       *int    `json:"expiry_batch"`
	ConnectTimeout    *string `json:"connect_timeout"`
}

// ParseConfig decodes the plugin's raw JSON config, applies defaults and
// validates the result. Unknown keys are refused. Errors never quote the
// DSN.
func ParseConfig(raw []byte) (Config, error) {
	var r rawConfig
	if err := interfaces.DecodeConfig(raw, &r); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	cfg := DefaultConfig("")
	if r.DSN != nil {
		cfg.DSN = *r.DSN
	}
	if r.Schema != nil {
		cfg.Schema = *r.Schema
	}
	if r.MaxConns != nil {
		cfg.MaxConns = *r.MaxConns
	}
	if r.MaxValueBytes != nil {
		cfg.MaxValueBytes = *r.MaxValueBytes
	}
	if r.SynchronousCommit != nil {
		cfg.SynchronousCommit = *r.SynchronousCommit
	}
	if r.ExpiryBatch != nil {
		cfg.ExpiryBatch = *r.ExpiryBatch
	}
	for _, d := range []struct {
		name string
		raw  *string
		dst  *time.Duration
	}{{"expiry_interval", r.ExpiryInterval, &cfg.ExpiryInterval}, {"connect_timeout", r.ConnectTimeout, &cfg.ConnectTimeout}} {
		if d.raw == nil {
			continue
		}
		v, err := time.ParseDuration(*d.raw)
		if err != nil {
			return Config{}, fmt.Errorf("%w: %s: %v", ErrConfig, d.name, err)
		}
		*d.dst = v
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// schemaName is what Schema may be: a lower-case SQL identifier that needs
// no quoting anywhere (63 bytes is PostgreSQL's identifier limit).
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	switch {
	case !schemaName.MatchString(c.Schema):
		return fmt.Errorf("%w: schema %q, want a lower-case identifier [a-z_][a-z0-9_]*, at most 63 bytes", ErrConfig, c.Schema)
	case c.MaxConns < 1:
		return fmt.Errorf("%w: max_conns is %d, want at least 1", ErrConfig, c.MaxConns)
	case c.MaxValueBytes <= 0 || c.MaxValueBytes > maxMaxValueBytes:
		return fmt.Errorf("%w: max_value_bytes is %d, want 1..%d", ErrConfig, c.MaxValueBytes, maxMaxValueBytes)
	case c.ExpiryInterval < 0:
		return fmt.Errorf("%w: expiry_interval is %v, want >= 0 (0 disables)", ErrConfig, c.ExpiryInterval)
	case c.ExpiryBatch < 1:
		return fmt.Errorf("%w: expiry_batch is %d, want at least 1", ErrConfig, c.ExpiryBatch)
	case c.ConnectTimeout <= 0:
		return fmt.Errorf("%w: connect_timeout is %v, want > 0", ErrConfig, c.ConnectTimeout)
	}
	return nil
}
