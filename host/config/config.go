// Package config is the node's configuration: typed structs with defaults,
// loaded by koanf from a YAML file, then from SOTTO_-prefixed environment
// variables, then from command-line flags (each source overrides the one
// before), and validated as a whole before anything starts. It is the first
// thing `sotto node` does; `sotto node --check` prints what Validate finds.
//
// Environment mapping: a variable SOTTO_A__B_C sets the key a.b_c. The
// prefix is dropped, the rest is lower-cased, a double underscore separates
// nesting levels and a single underscore stays part of the name, so
// SOTTO_MIX__LAYER sets mix.layer, SOTTO_DATA_DIR sets data_dir and
// SOTTO_MIXING__UNWRAP_WORKERS sets mixing.unwrap_workers. List keys
// (listen, plugins.*.args) take a comma-separated value. A plugin's own
// config is set whole as a JSON document (SOTTO_PLUGINS__ACCOUNTING__CONFIG=
// '{"quota": 3}') or key by key with JSON values, so types survive
// (SOTTO_PLUGINS__ACCOUNTING__CONFIG__QUOTA=3): see PluginSlot. An unknown key is
// an error wherever it comes from, a stray SOTTO_ variable included, so that
// a misspelt setting never passes silently.
package config

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/sottonet/sotto/interfaces"
)

// MaxLayers is the number of mix layers a node may be placed in.
const MaxLayers = 3

// Role names, as written in the config.
const (
	RoleMix      = "mix"
	RoleProvider = "provider"
)

// ErrInvalid is wrapped by every problem Validate and Load report, so that
// callers can tell a bad config from an I/O failure.
var ErrInvalid = errors.New("invalid config")

// Config is everything a node reads at start.
type Config struct {
	// Role is "mix" or "provider".
	Role string `koanf:"role"`
	// NetworkFile is the network file (see Network), relative to this
	// config's directory: it sets network, epoch and the PKI slot's
	// network-wide settings, so that no node types them again.
	NetworkFile string `koanf:"network_file"`
	// Network names the network; descriptors never cross networks. Set by
	// the network file when there is one.
	Network string `koanf:"network"`
	// DataDir holds the node's keys (see host/keystore) and local state.
	DataDir string `koanf:"data_dir"`
	// Listen are libp2p multiaddrs: TCP (/tcp/N), QUIC (/udp/N/quic-v1),
	// and on providers WebSocket (/tcp/N/ws) for browsers.
	Listen []string `koanf:"listen"`
	// Announce, if set, are the multiaddrs the node publishes in its
	// descriptor instead of what it listens on (a public address in front
	// of a NAT or a 0.0.0.0 listener). Unset, the node publishes its
	// listen addresses, without loopback ones unless it only listens on
	// loopback.
	Announce []string `koanf:"announce"`

	Mix      Mix      `koanf:"mix"`
	Epoch    Epoch    `koanf:"epoch"`
	Plugins  Plugins  `koanf:"plugins"`
	Mixing   Mixing   `koanf:"mixing"`
	Limits   Limits   `koanf:"limits"`
	Metrics  Metrics  `koanf:"metrics"`
	Provider Provider `koanf:"provider"`
	// Experiment makes the node misbehave on purpose, for experiments on
	// a local network only (see Experiment). Never set by operators.
	Experiment Experiment `koanf:"experiment"`

	net *Network // the network file, when NetworkFile names one
}

// ExperimentEnv must be set to ExperimentConsent in a node's environment
// for it to accept any Experiment setting; the demo and tests set it.
const (
	ExperimentEnv     = "SOTTOLAB_CHEAT_CONSENT" // not SOTTO_: that prefix is config
	ExperimentConsent = "cheat-on-a-test-network"
)

// Experiment holds deliberate misbehaviours for experiments (the secret
// shopper's comparison). A node refuses any of them unless it listens on
// loopback only and its environment has ExperimentEnv=ExperimentConsent,
// so no operator's node cheats by a stray line in its config.
type Experiment struct {
	// CheatDropForwardedFraction, in [0, 1): a mix drops this fraction of
	// the packets it should forward while counting them all as forwarded
	// work, as a cheating mix would.
	CheatDropForwardedFraction float64 `koanf:"cheat_drop_forwarded_fraction"`
}

// Mix is what only a mix uses.
type Mix struct {
	// Layer is ignored: the PKI document deals mixes into layers each
	// epoch (core/topology). It is still read, so that old configs load;
	// when set it must be 0..MaxLayers, and a provider's must be 0.
	Layer int `koanf:"layer"`
}

// Epoch is the network's clock (see core/epoch). All nodes of a network
// must agree on it.
type Epoch struct {
	// Genesis is the start of epoch 0 (RFC 3339).
	Genesis time.Time `koanf:"genesis"`
	// Period is the length of an epoch. Default 20m.
	Period time.Duration `koanf:"period"`
	// Grace is how long a key is still accepted after its epoch. Default 2m.
	Grace time.Duration `koanf:"grace"`
}

// Plugins are the node's plugin slots.
type Plugins struct {
	PKI        PluginSlot `koanf:"pki"`        // required
	Storage    PluginSlot `koanf:"storage"`    // required: replay tags and mailboxes live there
	Accounting PluginSlot `koanf:"accounting"` // optional; providers check credentials with it
}

// Mixing sizes the packet pipeline.
type Mixing struct {
	// QueueCapacity bounds the packets held for their delay; beyond it a
	// packet is dropped and counted. Default 16384.
	QueueCapacity int `koanf:"queue_capacity"`
	// UnwrapWorkers is the number of goroutines doing Sphinx unwraps.
	// Default GOMAXPROCS.
	UnwrapWorkers int `koanf:"unwrap_workers"`
	// MaxDelay is the longest per-hop delay a packet may ask for; a packet
	// asking for more is dropped. Default 1m.
	MaxDelay time.Duration `koanf:"max_delay"`
}

// Limits feed the libp2p resource manager.
type Limits struct {
	MaxConns          int `koanf:"max_conns"`            // default 1024
	MaxConnsPerPeer   int `koanf:"max_conns_per_peer"`   // default 8
	MaxStreams        int `koanf:"max_streams"`          // default 4096
	MaxStreamsPerPeer int `koanf:"max_streams_per_peer"` // default 64
	MaxMemoryMB       int `koanf:"max_memory_mb"`        // default 512
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	// Listen is host:port for /metrics; empty disables it. Default 127.0.0.1:9464.
	Listen string `koanf:"listen"`
}

// Provider is what only a provider uses.
type Provider struct {
	// MailboxLifetime is how long a delivered payload is kept. Default 24h.
	MailboxLifetime time.Duration `koanf:"mailbox_lifetime"`
	// ClientProtocol is the libp2p protocol ID clients speak to their provider.
	ClientProtocol string `koanf:"client_protocol"`
	// Clients bounds what clients may hold of the provider (see
	// host/provider.Config); zero values take the service's defaults.
	Clients ClientLimits `koanf:"clients"`
	// MailboxMaxMessages and MailboxMaxMB bound what one mailbox holds:
	// a payload that would take it over either is dropped (counted as
	// mailbox_messages or mailbox_bytes). Zero: 4096 messages, 16 MiB.
	MailboxMaxMessages int `koanf:"mailbox_max_messages"`
	MailboxMaxMB       int `koanf:"mailbox_max_mb"`
	// AuditRate, if positive, makes the provider a secret-shopper auditor
	// (docs/SPEC.md, "Accounting: the secret shopper"): it sends probes
	// through chosen mixes back to itself at this Poisson rate (per
	// second; a client's λL keeps them as common as one client's loops)
	// and reports what came back to its accounting plugin each epoch.
	AuditRate float64 `koanf:"audit_rate"`
}

// ClientLimits are the provider's client-service limits. Zero means the
// default of host/provider.
type ClientLimits struct {
	MaxStreams          int           `koanf:"max_streams"`            // all client streams; default 4096
	MaxStreamsPerClient int           `koanf:"max_streams_per_client"` // default 4
	MaxStreamsPerIP     int           `koanf:"max_streams_per_ip"`     // per IPv4 address or IPv6 /64; default 64
	MaxInFlight         int           `koanf:"max_in_flight"`          // requests served at once per stream; default 16
	MaxRequests         int           `koanf:"max_requests"`           // requests served at once in all; default 1024
	ReplyMB             int           `koanf:"reply_mb"`               // reply bytes held at once, MiB; default 64
	FirstRequestTimeout time.Duration `koanf:"first_request_timeout"`  // default 10s
	IdleTimeout         time.Duration `koanf:"idle_timeout"`           // default 5m
	ReplyMBPerClient    int           `koanf:"reply_mb_per_client"`    // of reply_mb, one client's share, MiB; default 4
	ReplyMBPerIP        int           `koanf:"reply_mb_per_ip"`        // of reply_mb, one address's share, MiB; default 16
	// Sends per second, per client and per address (token buckets). Zero:
	// send_rate is ten times the document's λP+λL+λD (at least 10),
	// send_rate_per_ip 16 times send_rate, and each burst 10 s of its rate.
	SendRate       float64 `koanf:"send_rate"`
	SendBurst      int     `koanf:"send_burst"`
	SendRatePerIP  float64 `koanf:"send_rate_per_ip"`
	SendBurstPerIP int     `koanf:"send_burst_per_ip"`
}

// DefaultClientProtocol is the provider's client protocol ID.
const DefaultClientProtocol = "/sotto/client/1.0.0"

// Default returns a config holding every default. Role, network, data_dir,
// listen, epoch.genesis and the required plugin slots have none.
func Default() Config {
	return Config{
		Epoch: Epoch{Period: 20 * time.Minute, Grace: 2 * time.Minute},
		Mixing: Mixing{
			QueueCapacity: 16384,
			UnwrapWorkers: runtime.GOMAXPROCS(0),
			MaxDelay:      time.Minute,
		},
		Limits: Limits{
			MaxConns: 1024, MaxConnsPerPeer: 8,
			MaxStreams: 4096, MaxStreamsPerPeer: 64,
			MaxMemoryMB: 512,
		},
		Metrics:  Metrics{Listen: "127.0.0.1:9464"},
		Provider: Provider{MailboxLifetime: 24 * time.Hour, ClientProtocol: DefaultClientProtocol},
	}
}

// RoleValue returns the role as the PKI's type; it is only meaningful on a
// validated config.
func (c *Config) RoleValue() interfaces.Role {
	if c.Role == RoleProvider {
		return interfaces.RoleProvider
	}
	return interfaces.RoleMix
}

// fieldError is one problem, named by its key path.
type fieldError struct {
	path string
	msg  string
}

func (e *fieldError) Error() string { return e.path + ": " + e.msg }
func (e *fieldError) Unwrap() error { return ErrInvalid }

func problem(path, format string, args ...any) error {
	return &fieldError{path: path, msg: fmt.Sprintf(format, args...)}
}
