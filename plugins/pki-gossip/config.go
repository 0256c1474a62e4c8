package pkigossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces"
)

// Config is the plugin's configuration, decoded from the raw JSON the host
// hands it (see README.md). Zero fields take the defaults below.
type Config struct {
	// Network names the network; it selects the gossip topic and is checked
	// in every descriptor.
	Network string `json:"network"`
	// Listen are libp2p listen multiaddrs. Default /ip4/0.0.0.0/tcp/4101.
	Listen []string `json:"listen"`
	// Bootstrap are multiaddrs (with /p2p/<id>) of members to dial first.
	Bootstrap []string `json:"bootstrap"`
	// IdentitySeed is the 32-byte Ed25519 seed of this member's libp2p key,
	// base64 in JSON. Empty: a fresh key per start.
	IdentitySeed []byte `json:"identity_seed"`
	// Genesis is the start of epoch 0; EpochPeriod and Grace drive the
	// epoch clock. Defaults: Unix epoch, epoch.DefaultPeriod, a tenth of it.
	Genesis     time.Time     `json:"genesis"`
	EpochPeriod time.Duration `json:"epoch_period"`
	Grace       time.Duration `json:"grace"`
	// Ahead is how many epochs past the current one a descriptor may be
	// for. Default 2 (a descriptor carries keys for three epochs).
	Ahead uint64 `json:"ahead"`
	// Keep is how many closed epochs' state is kept for late fetchers.
	// Default 2.
	Keep uint64 `json:"keep"`
	// Params are the network parameters written into every document. Every
	// member must be configured alike, or their hashes differ.
	Params interfaces.NetworkParams `json:"params"`
	// SyncInterval is how often a member compares hashes with one random
	// peer and pulls what it lacks. Default a fortieth of the epoch period,
	// at least 200ms and at most 5s (so that a network converges in
	// seconds whatever its epoch length; members also pull from every peer
	// they connect to).
	SyncInterval time.Duration `json:"sync_interval"`
	// StateDir, if set, persists accepted descriptors so a restarted member
	// has its view before it reaches any peer. It is created (0700) if
	// missing; a member that cannot write to it refuses to start.
	StateDir string `json:"state_dir"`
	// Admission is who may have a descriptor in a document: the design
	// ("endorsed", "open", "none") and its settings. The JSON config must
	// name a policy.
	Admission Admission `json:"admission"`
}

// ParseConfig decodes raw JSON, applies defaults and validates.
func ParseConfig(raw []byte) (Config, error) {
	c, err := decodeConfig(raw)
	if err != nil {
		return c, err
	}
	c.setDefaults()
	return c, c.Validate()
}

// decodeConfig decodes raw JSON without defaults. An operator's config must
// choose its admission policy: leaving it out would silently admit anyone.
func decodeConfig(raw []byte) (Config, error) {
	var c Config
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c); err != nil {
			return c, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if c.Admission.Policy == "" {
		return c, fmt.Errorf("%w: admission.policy is required: one of %s (README.md, \"Admission\")", ErrConfig, policyNames())
	}
	return c, nil
}

// adoptClock fills the epoch clock from the host's when the config leaves
// it out, and refuses a config whose clock disagrees with the host's: a
// PKI on another clock would publish and serve the wrong epochs.
func (c *Config) adoptClock(h *interfaces.Host) error {
	if !h.HasClock() {
		return nil
	}
	hc := h.Clock
	if c.Genesis.IsZero() && c.EpochPeriod == 0 {
		c.Genesis, c.EpochPeriod = hc.Genesis(), hc.Period()
		if c.Grace == 0 {
			c.Grace = hc.Grace()
		}
		return nil
	}
	if !c.Genesis.Equal(hc.Genesis()) || c.EpochPeriod != hc.Period() {
		return fmt.Errorf("%w: epoch clock (genesis %v, period %v) differs from the node's (genesis %v, period %v)",
			ErrConfig, c.Genesis, c.EpochPeriod, hc.Genesis(), hc.Period())
	}
	return nil
}

func (c *Config) setDefaults() {
	if len(c.Listen) == 0 {
		c.Listen = []string{"/ip4/0.0.0.0/tcp/4101"}
	}
	if c.EpochPeriod == 0 {
		c.EpochPeriod = epoch.DefaultPeriod
	}
	if c.Grace == 0 {
		c.Grace = c.EpochPeriod / 10
	}
	if c.Ahead == 0 {
		c.Ahead = 2
	}
	if c.Keep == 0 {
		c.Keep = 2
	}
	if c.Params.EpochPeriod == 0 {
		c.Params.EpochPeriod = c.EpochPeriod
	}
	// The document states the network's clock, so clients learn it from
	// the network (docs/SPEC.md, "Encodings").
	if c.Params.Genesis.IsZero() {
		c.Params.Genesis = c.Genesis
	}
	if c.Params.EpochGrace == 0 {
		c.Params.EpochGrace = c.Grace
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = min(max(c.EpochPeriod/40, 200*time.Millisecond), maxSyncInterval)
	}
	c.Admission.setDefaults()
}

// maxSyncInterval caps the default anti-entropy interval: a round costs
// one 32-byte hash per live epoch when views agree.
const maxSyncInterval = 5 * time.Second

// ErrConfig: the configuration is unusable.
var ErrConfig = errors.New("pki-gossip: invalid config")

// Validate refuses a configuration the member cannot run with.
func (c *Config) Validate() error {
	if c.Network == "" || len(c.Network) > interfaces.MaxNetworkLen {
		return fmt.Errorf("%w: network name %q", ErrConfig, c.Network)
	}
	if len(c.IdentitySeed) != 0 && len(c.IdentitySeed) != 32 {
		return fmt.Errorf("%w: identity seed of %d bytes, want 32", ErrConfig, len(c.IdentitySeed))
	}
	if _, err := epoch.New(c.Genesis, c.EpochPeriod, c.Grace); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.Params.EpochPeriod != c.EpochPeriod {
		return fmt.Errorf("%w: params.epoch_period %v differs from epoch_period %v", ErrConfig, c.Params.EpochPeriod, c.EpochPeriod)
	}
	if !c.Params.Genesis.Equal(c.Genesis) || c.Params.EpochGrace != c.Grace {
		return fmt.Errorf("%w: params state the clock %v/%v, the member runs on %v/%v", ErrConfig, c.Params.Genesis, c.Params.EpochGrace, c.Genesis, c.Grace)
	}
	if err := c.Params.Validate(); err != nil {
		return fmt.Errorf("%w: params: %w", ErrConfig, err)
	}
	if c.SyncInterval <= 0 {
		return fmt.Errorf("%w: sync interval %v", ErrConfig, c.SyncInterval)
	}
	return c.Admission.validate(c.Network)
}

// topic is the gossip topic. Version 2: messages carry an admission proof
// beside the descriptor (version 1 carried the descriptor alone).
func (c *Config) topic() string { return "/sotto/pki/" + c.Network + "/2" }
