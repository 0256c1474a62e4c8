package storagebadger

import (
	"bytes"
	"fmt"
	"log/slog"
	"time"

	"github.com/sottonet/sotto/interfaces"
)

// Defaults applied by ParseConfig and DefaultConfig.
const (
	DefaultMaxValueBytes = 1 << 20  // 1 MiB per payload or KV value
	DefaultMemTableBytes = 64 << 20 // Badger's own default
	DefaultCacheBytes    = 64 << 20
	DefaultGCInterval    = 10 * time.Minute

	// minMemTableBytes keeps Badger's per-transaction limit (15% of the
	// memtable) above one maximal value plus keys.
	minMemTableBytes = 1 << 20
	maxMaxValueBytes = 64 << 20
)

// ErrConfig is wrapped by every configuration error. It wraps
// interfaces.ErrInvalidArgument, so a host that configures the plugin with
// bad JSON sees that sentinel across the gRPC boundary.
var ErrConfig = fmt.Errorf("storage-badger: invalid config: %w", interfaces.ErrInvalidArgument)

// Config configures a Store. Build it with ParseConfig (from the plugin's
// raw JSON) or DefaultConfig: the zero value has SyncWrites off, which is
// not the durable default.
type Config struct {
	// Dir is the database directory; created if missing. Required.
	Dir string `json:"dir"`
	// SyncWrites makes every commit fsync before the call returns, so an
	// acknowledged write survives power loss. Default true. Off, writes
	// survive a process crash (SIGKILL) but not power loss or a kernel crash.
	SyncWrites bool `json:"sync_writes"`
	// MaxValueBytes bounds one mailbox payload or KV value.
	MaxValueBytes int `json:"max_value_bytes"`
	// MemTableBytes is Badger's memtable size. Badger refuses a transaction
	// larger than 15% of it; such a batch gets ErrInvalidArgument.
	MemTableBytes int64 `json:"memtable_bytes"`
	// CacheBytes is Badger's block cache size.
	CacheBytes int64 `json:"cache_bytes"`
	// MinFreeBytes is the free space the filesystem under Dir must keep:
	// below it, writes (appends, KV puts and swaps, replay tags) are
	// refused with an error wrapping ErrUnavailable ("disk nearly full")
	// instead of reaching Badger, whose memory-mapped write-ahead log dies
	// with SIGBUS when the filesystem is full. Deletes and acks still run,
	// so space can be given back. 0: DefaultMinFreeBytes for the memtable
	// (4 memtables and 16 MiB: the mapped log, its successor, a flush and
	// a compaction's output); -1: no check.
	MinFreeBytes int64 `json:"min_free_bytes"`
	// GCInterval is how often the value log is garbage-collected (values
	// of at least 1 MiB live there, not in the LSM tree), the counters of
	// mailboxes whose messages all expired are reclaimed, and the
	// database's files narrowed to 0600. Zero disables all three.
	// Default 10 minutes; in JSON a Go duration string such as "10m".
	GCInterval time.Duration `json:"-"`
	// Logger receives Badger's logs. Default slog.Default(). Not in JSON.
	Logger *slog.Logger `json:"-"`
}

// DefaultMinFreeBytes is the free space kept under Dir for a memtable of
// memtableBytes: 4 memtables and 16 MiB.
func DefaultMinFreeBytes(memtableBytes int64) int64 { return 4*memtableBytes + 16<<20 }

// DefaultConfig returns the defaults for a database in dir.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:           dir,
		SyncWrites:    true,
		MaxValueBytes: DefaultMaxValueBytes,
		MemTableBytes: DefaultMemTableBytes,
		CacheBytes:    DefaultCacheBytes,
		GCInterval:    DefaultGCInterval,
	}
}

// rawConfig mirrors Config with pointers, so that absent keys take their
// defaults while explicit zeros and false are kept.
type rawConfig struct {
	Dir           *string `json:"dir"`
	SyncWrites    *bool   `json:"sync_writes"`
	MaxValueBytes *int    `json:"max_value_bytes"`
	MemTableBytes *int64  `json:"memtable_bytes"`
	CacheBytes    *int64  `json:"cache_bytes"`
	MinFreeBytes  *int64  `json:"min_free_bytes"`
	GCInterval    *string `json:"gc_interval"`
}

// ParseConfig decodes the plugin's raw JSON config, applies defaults and
// validates the result. Unknown keys are refused, so a typo does not
// silently fall back to a default.
func ParseConfig(raw []byte) (Config, error) {
	var r rawConfig
	if len(bytes.TrimSpace(raw)) == 0 {
		return Config{}, fmt.Errorf("%w: empty (a JSON object with at least \"dir\")", ErrConfig)
	}
	if err := interfaces.DecodeConfig(raw, &r); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	cfg := DefaultConfig("")
	if r.Dir != nil {
		cfg.Dir = *r.Dir
	}
	if r.SyncWrites != nil {
		cfg.SyncWrites = *r.SyncWrites
	}
	if r.MaxValueBytes != nil {
		cfg.MaxValueBytes = *r.MaxValueBytes
	}
	if r.MemTableBytes != nil {
		cfg.MemTableBytes = *r.MemTableBytes
	}
	if r.CacheBytes != nil {
		cfg.CacheBytes = *r.CacheBytes
	}
	if r.MinFreeBytes != nil {
		cfg.MinFreeBytes = *r.MinFreeBytes
	}
	if r.GCInterval != nil {
		d, err := time.ParseDuration(*r.GCInterval)
		if err != nil {
			return Config{}, fmt.Errorf("%w: gc_interval: %v", ErrConfig, err)
		}
		cfg.GCInterval = d
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate reports the first thing wrong with cfg. Zero sizes are refused
// here; Open fills them with defaults before validating.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: dir is required", ErrConfig)
	case c.MaxValueBytes <= 0 || c.MaxValueBytes > maxMaxValueBytes:
		return fmt.Errorf("%w: max_value_bytes is %d, want 1..%d", ErrConfig, c.MaxValueBytes, maxMaxValueBytes)
	case c.MemTableBytes < minMemTableBytes:
		return fmt.Errorf("%w: memtable_bytes is %d, want at least %d", ErrConfig, c.MemTableBytes, minMemTableBytes)
	case int64(c.MaxValueBytes) > c.MemTableBytes*15/100-1024:
		return fmt.Errorf("%w: max_value_bytes %d does not fit one Badger transaction (15%% of memtable_bytes %d)",
			ErrConfig, c.MaxValueBytes, c.MemTableBytes)
	case c.MinFreeBytes < -1:
		return fmt.Errorf("%w: min_free_bytes is %d, want >= 0 (or -1: no check)", ErrConfig, c.MinFreeBytes)
	case c.CacheBytes < 0:
		return fmt.Errorf("%w: cache_bytes is %d, want >= 0", ErrConfig, c.CacheBytes)
	case c.GCInterval < 0:
		return fmt.Errorf("%w: gc_interval is %v, want >= 0 (0 disables)", ErrConfig, c.GCInterval)
	}
	return nil
}

// withDefaults fills zero sizes (a Config built by hand) with defaults.
func (c Config) withDefaults() Config {
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.MemTableBytes == 0 {
		c.MemTableBytes = DefaultMemTableBytes
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = DefaultMinFreeBytes(c.MemTableBytes)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
