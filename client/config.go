package client

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/sottonet/sotto/core/epoch"
)

// Defaults of the Config fields left zero.
const (
	DefaultFetchInterval = time.Second
	DefaultMaxTries      = 5
	DefaultSuspectFor    = 10 * time.Minute
	DefaultContactSURBs  = 8
	DefaultMessageBuffer = 64
	DefaultMaxQueued     = 4096 // fragments waiting for a payload slot
)

// Config is what a Client is built from. Identity, Provider, ProviderID and
// Clock are required; everything else has a default.
type Config struct {
	// Identity is the client's Ed25519 key: its provider authenticates it,
	// and its own mailbox is clientproto.OwnMailbox(Identity.Public()).
	Identity ed25519.PrivateKey
	// MessageKey is the 32-byte X25519 private key that end-to-end messages
	// are encrypted to (HPKE). Nil derives it from Identity, so that a
	// CLI client only keeps one key file.
	MessageKey []byte
	// Provider is the client's link to its provider.
	Provider Provider
	// ProviderID is the provider's Sphinx node ID (its Ed25519 identity).
	ProviderID [32]byte
	// Network is the network name documents must carry; "" accepts the
	// name of the first document the provider serves.
	Network string
	// Clock maps time to epochs; it must match the network's.
	Clock epoch.Clock

	// Rand draws the cover schedule, paths and per-hop delays. Nil: a
	// ChaCha8 generator seeded from Entropy. Tests pass a seeded PCG.
	Rand *rand.Rand
	// Entropy supplies key material (Sphinx ephemeral keys, SURB keys,
	// message and SURB IDs, capabilities). Nil: crypto/rand. HPKE draws
	// from crypto/rand itself.
	Entropy io.Reader
	// Logger receives structured logs; nil: slog.Default().
	Logger *slog.Logger

	// FetchInterval is how often the client polls its mailboxes (and
	// checks timeouts).
	FetchInterval time.Duration
	// RetransmitTimeout is how long a fragment may go unacknowledged before
	// it is resent; 0 derives it from μ, the layers and FetchInterval.
	RetransmitTimeout time.Duration
	// LoopTimeout is how long a loop's body may take to come back before
	// the loop counts as lost; 0 derives it like RetransmitTimeout.
	LoopTimeout time.Duration
	// MaxTries is how many times a fragment is sent before its message is
	// reported failed.
	MaxTries int
	// SuspectFor is how long a mix on a lost loop (or on an unacknowledged
	// attempt) is avoided by message paths, unless a loop through it comes
	// back first.
	SuspectFor time.Duration
	// SURBLifetime is the storage lifetime that contact SURBs ask the
	// provider for (rounded to seconds); 0: the provider's default.
	SURBLifetime time.Duration
	// MessageBuffer is the capacity of the Messages channel.
	MessageBuffer int
	// MaxQueued bounds the fragments waiting to be sent; Send refuses a
	// message that would exceed it with ErrQueueFull.
	MaxQueued int
	// OnStatus, when set, is called (from the client's goroutines, never
	// with a lock held) each time an outgoing message reaches a final
	// state: Acked, Sent for receiver-anonymous contacts, or Failed.
	OnStatus func(MessageStatus)
}

func (cfg *Config) validate() error {
	var errs []error
	if len(cfg.Identity) != ed25519.PrivateKeySize {
		errs = append(errs, fmt.Errorf("identity is %d bytes, want %d", len(cfg.Identity), ed25519.PrivateKeySize))
	}
	if cfg.Provider == nil {
		errs = append(errs, errors.New("no provider"))
	}
	if cfg.ProviderID == ([32]byte{}) {
		errs = append(errs, errors.New("no provider ID"))
	}
	if cfg.Clock.Period() <= 0 {
		errs = append(errs, errors.New("no epoch clock"))
	}
	if cfg.MessageKey != nil && len(cfg.MessageKey) != 32 {
		errs = append(errs, fmt.Errorf("message key is %d bytes, want 32", len(cfg.MessageKey)))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"fetch interval", cfg.FetchInterval}, {"retransmit timeout", cfg.RetransmitTimeout},
		{"loop timeout", cfg.LoopTimeout}, {"suspect period", cfg.SuspectFor}, {"SURB lifetime", cfg.SURBLifetime}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("negative %s %v", d.name, d.v))
		}
	}
	if cfg.SURBLifetime > time.Duration(1<<32-1)*time.Second {
		errs = append(errs, fmt.Errorf("SURB lifetime %v does not fit 32 bits of seconds", cfg.SURBLifetime))
	}
	if cfg.MaxTries < 0 || cfg.MessageBuffer < 0 || cfg.MaxQueued < 0 {
		errs = append(errs, errors.New("negative count"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

func (cfg *Config) setDefaults() {
	if cfg.FetchInterval == 0 {
		cfg.FetchInterval = DefaultFetchInterval
	}
	if cfg.MaxTries == 0 {
		cfg.MaxTries = DefaultMaxTries
	}
	if cfg.SuspectFor == 0 {
		cfg.SuspectFor = DefaultSuspectFor
	}
	if cfg.MessageBuffer == 0 {
		cfg.MessageBuffer = DefaultMessageBuffer
	}
	if cfg.MaxQueued == 0 {
		cfg.MaxQueued = DefaultMaxQueued
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
}
