package plugin

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sottonet/sotto/interfaces"
)

// Config says which plugin fills one slot of the node.
type Config struct {
	// Name names this slot in logs and metrics ("storage").
	Name string
	// Kind is the plugin kind ("storage"); it picks the handshake.
	Kind string
	// Builtin names a plugin compiled into the sotto binary. Exactly one of
	// Builtin and Path is set.
	Builtin string
	// Path is an external plugin executable; Args are passed to it.
	Path string
	Args []string
	// SHA256, if set, pins Path's executable: the lowercase hex SHA-256 of
	// its bytes (`sha256sum PATH`). Before each start (restarts included)
	// the host hashes the file and refuses, with ErrChecksum naming both
	// sums, to start one that differs. Only for Path.
	SHA256 string
	// Reattach, if set, attaches the slot to a plugin process already
	// running in debug mode (interfaces.DebugEnv) instead of starting
	// Builtin or Path: the JSON the plugin printed,
	// {"kind":..., "protocol_version":..., "network":..., "addr":..., "pid":...}.
	// The host neither starts nor restarts that process; Close asks it to
	// stop. For debugging only (docs/PLUGINS.md).
	Reattach string
	// RawConfig is the plugin's own config, passed to it verbatim.
	RawConfig []byte
	// CallTimeout bounds a call that carries no earlier deadline. Default 10s.
	CallTimeout time.Duration
	// StartTimeout bounds the handshake and Configure. Default 30s.
	StartTimeout time.Duration
}

// Options are what the host lends its plugins.
type Options struct {
	// Logger receives host events and the plugins' own logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil means metrics are not registered
	// (they are still counted).
	Registerer prometheus.Registerer
	// Self is the executable re-executed for built-in plugins. Default
	// os.Executable(). Tests point it at their own binary.
	Self string
	// Env is added to a plugin's environment (tests use it).
	Env []string
	// MinBackoff and MaxBackoff bound the wait between restarts. Defaults
	// 100ms and 10s; the wait doubles after each failed start.
	MinBackoff, MaxBackoff time.Duration
	// Host is what the host offers the plugin besides its config
	// (interfaces.Host): Host.KV is the node's whole Storage KV, which the
	// plugin sees only under its slot's prefix (interfaces.SlotKV with
	// Config.Name); Host.Clock the network's epoch clock. Slot is set from
	// Config.Name. nil offers nothing (a storage plugin, which the others'
	// KV lives in, is started without it).
	Host *interfaces.Host
}
