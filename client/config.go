package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces/wallet"
)

// Defaults of the Config fields left zero.
const (
	DefaultFetchInterval = time.Second
	DefaultMaxTries      = 8
	DefaultSuspectFor    = 10 * time.Minute
	DefaultContactSURBs  = 4 // per epoch an anonymous contact covers
	DefaultMessageBuffer = 64
	DefaultMaxQueued     = 4096 // fragments waiting for a payload slot
)

// Config is what a Client is built from. ProviderID and a way to reach the
// provider (Provider, or Dial) are required; everything else has a default
// or comes from the Store.
type Config struct {
	// Store keeps the client's state, written on every change: its
	// identity, the epoch clock it learned, the keys behind its anonymous
	// contacts, every outgoing message not yet finished, every incoming
	// message the application has not taken (see Receive and Done). With
	// a Store, nothing acknowledged is lost to a crash of the process. Nil:
	// the state lives in memory only (MarshalState and LoadState still
	// export and import it). OpenFileStore is the default for programs.
	Store Store

	// Identity is the client's Ed25519 key: its provider authenticates it,
	// and its own mailbox is clientproto.OwnMailbox(Identity.Public()).
	// Nil: the Store's identity, or a fresh one (kept in the Store).
	Identity ed25519.PrivateKey
	// MessageKey is the 32-byte X25519 private key that end-to-end messages
	// are encrypted to (HPKE). Nil derives it from Identity, so that a
	// CLI client only keeps one key file.
	MessageKey []byte
	// Provider is the client's link to its provider.
	Provider Provider
	// Dial opens the link when Provider is nil, under the client's
	// identity (known only once the Store is read). Connect and Run call
	// it, Run again with backoff until it succeeds. client/p2p's Connect
	// sets it.
	Dial func(ctx context.Context, identity ed25519.PrivateKey) (Provider, error)
	// ProviderID is the provider's Sphinx node ID (its Ed25519 identity).
	ProviderID [32]byte
	// ProviderAddr is how the application reaches the provider (for
	// client/p2p, its multiaddr). The client keeps it in its state, so a
	// restarted program can find the provider from the state alone
	// (StoredProviderAddr); it never reads it.
	ProviderAddr string
	// Network is the network name documents must carry; "" accepts the
	// name of the first document the provider serves.
	Network string
	// Clock maps time to epochs. Zero: the clock the Store holds, or the
	// one the provider's current document states (learned by Connect). A
	// document stating another clock than the client's is refused with
	// ErrWrongClock.
	Clock epoch.Clock

	// Rand draws the cover schedule, paths and per-hop delays. Nil: a
	// ChaCha8 generator seeded from Entropy. Tests pass a seeded PCG.
	Rand *rand.Rand
	// Entropy supplies key material (Sphinx ephemeral keys, SURB keys,
	// message and SURB IDs, capabilities). Nil: crypto/rand. HPKE draws
	// from crypto/rand itself.
	Entropy io.Reader
	// Messaging, when set, builds the end-to-end messaging layer on the
	// key-value space of the client's state it is handed (called once, by
	// New, after the state is loaded). Messages to contacts that carry a
	// card are then sealed through it, and its card goes into this
	// client's contacts. Nil: messages are sealed to the contact's HPKE
	// key only (no forward secrecy: docs/SPEC.md, "Messaging layer").
	Messaging func(kv *MessagingKV) (Messaging, error)
	// Logger receives structured logs; nil: slog.Default().
	Logger *slog.Logger

	// OnEvent, when set, is called (from the client's goroutines, never
	// with a lock held) when the connection to the provider changes state
	// and when the client moves to a new epoch's document.
	OnEvent func(Event)

	// FetchInterval is how often the client checks timeouts, and polls
	// its mailboxes when its link has no pushed downstream (Subscriber).
	FetchInterval time.Duration
	// RetransmitTimeout is how long a fragment may go unacknowledged before
	// it is resent; 0 derives it from μ, the layers and FetchInterval.
	RetransmitTimeout time.Duration
	// LoopTimeout is how long a loop's body may take to come back before
	// the loop counts as lost; 0 derives it like RetransmitTimeout.
	LoopTimeout time.Duration
	// DeliveryTimeout is how long a fragment sent through an anonymous
	// contact's SURB may go without the recipient's end-to-end
	// acknowledgement before it is sent again through another of the
	// contact's SURBs; 0 derives it from the path's delays, both sides'
	// fetch intervals and λP.
	DeliveryTimeout time.Duration
	// MaxTries is how many times a fragment is sent before its message is
	// reported failed. The wait for an acknowledgement doubles with every
	// try (with jitter), so the default rides out a recipient's provider
	// down for a few minutes.
	MaxTries int
	// SuspectFor is how long a mix on a lost loop (or on an unacknowledged
	// attempt) is avoided by message paths, unless a loop through it comes
	// back first.
	SuspectFor time.Duration
	// SURBLifetime is the storage lifetime that contact SURBs ask the
	// provider for (rounded to seconds); 0: the provider's default.
	SURBLifetime time.Duration
	// MessageBuffer is how many complete incoming messages the client
	// holds for the application (handed out by Receive but not Done
	// included) before it stops fetching: messages wait in the provider's
	// mailbox meanwhile.
	MessageBuffer int
	// MaxQueued bounds the fragments waiting to be sent; Send refuses a
	// message that would exceed it with ErrQueueFull.
	MaxQueued int
	// Wallet, when set, pays a provider that charges for sending
	// (pay.go): an accounting design's client half, which the program
	// chooses (cmd/sotto hands in the one its config names). Its state
	// is kept in the client's. Nil: the client never pays.
	Wallet wallet.Wallet
	// PayAhead is the allowance left at which the client pays again; 0:
	// DefaultPayAhead.
	PayAhead int
	// OnStatus, when set, is called (from the client's goroutines, never
	// with a lock held) once per outgoing message, when it reaches its
	// final state: Acked (forward contacts), Delivered (anonymous
	// contacts) or Failed.
	OnStatus func(MessageStatus)
}

func (cfg *Config) validate() error {
	var errs []error
	if cfg.Identity != nil && len(cfg.Identity) != ed25519.PrivateKeySize {
		errs = append(errs, fmt.Errorf("identity is %d bytes, want %d", len(cfg.Identity), ed25519.PrivateKeySize))
	}
	if cfg.Provider == nil && cfg.Dial == nil {
		errs = append(errs, errors.New("no provider and no way to dial one"))
	}
	if cfg.ProviderID == ([32]byte{}) {
		errs = append(errs, errors.New("no provider ID"))
	}
	if cfg.MessageKey != nil && len(cfg.MessageKey) != 32 {
		errs = append(errs, fmt.Errorf("message key is %d bytes, want 32", len(cfg.MessageKey)))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"fetch interval", cfg.FetchInterval}, {"retransmit timeout", cfg.RetransmitTimeout},
		{"loop timeout", cfg.LoopTimeout}, {"suspect period", cfg.SuspectFor}, {"SURB lifetime", cfg.SURBLifetime},
		{"delivery timeout", cfg.DeliveryTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("negative %s %v", d.name, d.v))
		}
	}
	if cfg.SURBLifetime > time.Duration(1<<32-1)*time.Second {
		errs = append(errs, fmt.Errorf("SURB lifetime %v does not fit 32 bits of seconds", cfg.SURBLifetime))
	}
	if cfg.MaxTries < 0 || cfg.MessageBuffer < 0 || cfg.MaxQueued < 0 || cfg.PayAhead < 0 {
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
	if cfg.PayAhead == 0 {
		cfg.PayAhead = DefaultPayAhead
	}
}
