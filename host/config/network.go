package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/sottonet/sotto/interfaces"
)

// Network is the network file: what every node and client of one network
// shares, written once by the operator (`sotto network init`) and copied
// unchanged to every host. A node names it in its config (network_file);
// a client reads it with --network. Nothing in it is secret. Durations
// are Go durations ("20m", "2m") and rates are per second, everywhere.
type Network struct {
	// Name names the network; descriptors never cross networks.
	Name string `koanf:"name"`
	// Genesis is the start of epoch 0 (RFC 3339); Period the length of an
	// epoch; Grace how long a key is still accepted after its epoch.
	Genesis time.Time     `koanf:"genesis"`
	Period  time.Duration `koanf:"period"`
	Grace   time.Duration `koanf:"grace"`
	// Geometry of every packet on the network.
	Geometry Geometry `koanf:"geometry"`
	// Rates are the Loopix rates, per second.
	Rates Rates `koanf:"rates"`
	// PKI is which PKI the network runs and what its members need to find
	// each other.
	PKI NetworkPKI `koanf:"pki"`
	// Providers are the providers' full libp2p multiaddrs (with /p2p/),
	// where clients connect; a client takes the first unless told.
	Providers []string `koanf:"providers"`
}

// Geometry is the packet geometry.
type Geometry struct {
	Hops       int `koanf:"hops"`        // mix hops of a forward path (providers excluded)
	Layers     int `koanf:"layers"`      // mix layers; usually equal to hops
	PayloadLen int `koanf:"payload_len"` // user payload bytes per packet
}

// Rates are the Loopix parameters.
type Rates struct {
	Mu      float64 `koanf:"mu"`       // per-hop delay Exp(μ): mean 1/μ seconds
	LambdaP float64 `koanf:"lambda_p"` // client payload slots
	LambdaL float64 `koanf:"lambda_l"` // client loop cover
	LambdaD float64 `koanf:"lambda_d"` // client drop cover
	LambdaM float64 `koanf:"lambda_m"` // mix loop cover, per mix
}

// NetworkPKI is the network's PKI.
type NetworkPKI struct {
	// Plugin is the built-in PKI plugin every node runs: "pki-gossip"
	// (default) or "pki-static".
	Plugin string `koanf:"plugin"`
	// Bootstrap are pki-gossip members to dial first (full multiaddrs of
	// their PKI listeners, as `sotto node addrs` prints them).
	Bootstrap []string `koanf:"bootstrap"`
	// Admission is pki-gossip's admission policy: "endorsed" (default),
	// "open" or "none"; Roots (Ed25519 public keys, base64) and Threshold
	// are the endorsed policy's trust roots.
	Admission string   `koanf:"admission"`
	Roots     []string `koanf:"roots"`
	Threshold int      `koanf:"threshold"`
	// OperatorKey is pki-static's operator public key (hex).
	OperatorKey string `koanf:"operator_key"`
}

// PKI plugin names a network file may choose.
const (
	PKIGossip = "pki-gossip"
	PKIStatic = "pki-static"
)

// LoadNetwork reads and validates a network file.
func LoadNetwork(path string) (*Network, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("network file: %w", err)
	}
	n, err := ParseNetwork(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// ParseNetwork decodes and validates a network file's bytes.
func ParseNetwork(b []byte) (*Network, error) {
	k := koanf.New(".")
	if err := k.Load(rawbytes.Provider(b), yaml.Parser()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	n := &Network{PKI: NetworkPKI{Plugin: PKIGossip, Admission: "endorsed", Threshold: 1}}
	if err := k.UnmarshalWithConf("", n, koanf.UnmarshalConf{DecoderConfig: &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToTimeHookFunc(time.RFC3339),
		),
		WeaklyTypedInput: true,
		ErrorUnused:      true,
		TagName:          "koanf",
	}}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := n.Validate(); err != nil {
		return nil, err
	}
	return n, nil
}

// Validate returns every problem of the network file, each naming its key.
func (n *Network) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, problem(path, format, args...)) }
	if n.Name == "" || len(n.Name) > interfaces.MaxNetworkLen {
		add("name", "must be 1..%d bytes, got %q", interfaces.MaxNetworkLen, n.Name)
	}
	if n.Genesis.IsZero() || n.Genesis.Unix() <= 0 {
		add("genesis", "must be set (RFC 3339, e.g. 2026-01-01T00:00:00Z)")
	}
	if n.Period <= 0 {
		add("period", "must be positive, got %v", n.Period)
	}
	if n.Grace < 0 || (n.Period > 0 && n.Grace >= n.Period) {
		add("grace", "must be in [0, period %v), got %v", n.Period, n.Grace)
	}
	if n.Geometry.Hops < 1 || n.Geometry.Hops > 255 {
		add("geometry.hops", "must be 1..255, got %d", n.Geometry.Hops)
	}
	if n.Geometry.Layers < 1 || n.Geometry.Layers > 16 {
		add("geometry.layers", "must be 1..16, got %d", n.Geometry.Layers)
	}
	if n.Geometry.PayloadLen < 1 || n.Geometry.PayloadLen > math.MaxUint32 {
		add("geometry.payload_len", "must be positive, got %d", n.Geometry.PayloadLen)
	}
	for _, r := range []struct {
		key string
		v   float64
	}{{"mu", n.Rates.Mu}, {"lambda_p", n.Rates.LambdaP}, {"lambda_l", n.Rates.LambdaL}, {"lambda_d", n.Rates.LambdaD}, {"lambda_m", n.Rates.LambdaM}} {
		if !(r.v > 0) || math.IsInf(r.v, 0) {
			add("rates."+r.key, "must be a positive number per second, got %v", r.v)
		}
	}
	switch n.PKI.Plugin {
	case PKIGossip:
		switch n.PKI.Admission {
		case "endorsed":
			if len(n.PKI.Roots) == 0 {
				add("pki.roots", "endorsed admission needs at least one trust root (Ed25519 public key, base64)")
			}
			for i, r := range n.PKI.Roots {
				if b, err := base64.StdEncoding.DecodeString(r); err != nil || len(b) != 32 {
					add(fmt.Sprintf("pki.roots[%d]", i), "must be a base64 Ed25519 public key, got %q", r)
				}
			}
			if n.PKI.Threshold < 1 || n.PKI.Threshold > len(n.PKI.Roots) {
				add("pki.threshold", "must be 1..%d (the number of roots), got %d", len(n.PKI.Roots), n.PKI.Threshold)
			}
		case "open", "none":
		default:
			add("pki.admission", "must be endorsed, open or none, got %q", n.PKI.Admission)
		}
		for i, s := range n.PKI.Bootstrap {
			if a, err := ma.NewMultiaddr(s); err != nil {
				add(fmt.Sprintf("pki.bootstrap[%d]", i), "not a multiaddr %q: %v", s, err)
			} else if _, err := a.ValueForProtocol(ma.P_P2P); err != nil {
				add(fmt.Sprintf("pki.bootstrap[%d]", i), "%q must end in /p2p/PEER-ID (sotto node addrs prints it)", s)
			}
		}
	case PKIStatic:
		if len(n.PKI.OperatorKey) != 64 {
			add("pki.operator_key", "pki-static needs the operator's Ed25519 public key, 64 hex digits (sotto pki keygen prints it)")
		}
	default:
		add("pki.plugin", "must be %s or %s, got %q", PKIGossip, PKIStatic, n.PKI.Plugin)
	}
	for i, s := range n.Providers {
		if a, err := ma.NewMultiaddr(s); err != nil {
			add(fmt.Sprintf("providers[%d]", i), "not a multiaddr %q: %v", s, err)
		} else if _, err := a.ValueForProtocol(ma.P_P2P); err != nil {
			add(fmt.Sprintf("providers[%d]", i), "%q must end in /p2p/PEER-ID", s)
		}
	}
	return errors.Join(errs...)
}

// Params are the network parameters the PKI writes into every document.
func (n *Network) Params() interfaces.NetworkParams {
	return interfaces.NetworkParams{
		Hops: uint8(n.Geometry.Hops), Layers: uint8(n.Geometry.Layers), PayloadLen: uint32(n.Geometry.PayloadLen),
		Mu: n.Rates.Mu, LambdaP: n.Rates.LambdaP, LambdaL: n.Rates.LambdaL, LambdaD: n.Rates.LambdaD, LambdaM: n.Rates.LambdaM,
		EpochPeriod: n.Period, Genesis: n.Genesis, EpochGrace: n.Grace,
	}
}

// applyNetwork fills c from the network file at path (relative to the
// node config's directory dir): the network name and epoch clock, and the
// PKI slot (the built-in plugin, and in its config every key the network
// decides that the node's config leaves out). A key the node config sets
// to another value than the network file's is an error: a clock typed
// twice is a clock that can disagree.
func (c *Config) applyNetwork(k *koanf.Koanf, dir string) error {
	path := c.NetworkFile
	if !filepath.IsAbs(path) && dir != "" {
		path = filepath.Join(dir, path)
	}
	n, err := LoadNetwork(path)
	if err != nil {
		return fmt.Errorf("%w: network_file: %w", ErrInvalid, err)
	}
	c.net = n
	var errs []error
	if c.Network != "" && c.Network != n.Name {
		errs = append(errs, problem("network", "is %q but the network file names %q; remove it from the node config", c.Network, n.Name))
	}
	c.Network = n.Name
	if k.Exists("epoch.genesis") && !c.Epoch.Genesis.Equal(n.Genesis) {
		errs = append(errs, problem("epoch.genesis", "differs from the network file's %s; remove epoch from the node config", n.Genesis.Format(time.RFC3339)))
	}
	if k.Exists("epoch.period") && c.Epoch.Period != n.Period {
		errs = append(errs, problem("epoch.period", "differs from the network file's %v; remove epoch from the node config", n.Period))
	}
	if k.Exists("epoch.grace") && c.Epoch.Grace != n.Grace {
		errs = append(errs, problem("epoch.grace", "differs from the network file's %v; remove epoch from the node config", n.Grace))
	}
	c.Epoch = Epoch{Genesis: n.Genesis, Period: n.Period, Grace: n.Grace}
	slot := &c.Plugins.PKI
	if !slot.IsSet() {
		slot.Builtin = n.PKI.Plugin
	}
	if slot.Builtin != n.PKI.Plugin {
		return errors.Join(errs...) // another PKI: its config is the operator's
	}
	if slot.Config == nil {
		slot.Config = map[string]any{}
	}
	setDefault := func(m map[string]any, key string, v any) {
		if _, ok := m[key]; !ok {
			m[key] = v
		}
	}
	setDefault(slot.Config, "network", n.Name)
	switch n.PKI.Plugin {
	case PKIGossip:
		setDefault(slot.Config, "genesis", n.Genesis)
		setDefault(slot.Config, "epoch_period", n.Period)
		setDefault(slot.Config, "grace", n.Grace)
		setDefault(slot.Config, "params", n.Params())
		if len(n.PKI.Bootstrap) > 0 {
			setDefault(slot.Config, "bootstrap", n.PKI.Bootstrap)
		}
		adm, _ := slot.Config["admission"].(map[string]any)
		if adm == nil {
			adm = map[string]any{}
			slot.Config["admission"] = adm
		}
		setDefault(adm, "policy", n.PKI.Admission)
		if n.PKI.Admission == "endorsed" && adm["policy"] == "endorsed" {
			e, _ := adm["endorsed"].(map[string]any)
			if e == nil {
				e = map[string]any{}
				adm["endorsed"] = e
			}
			setDefault(e, "roots", n.PKI.Roots)
			setDefault(e, "threshold", n.PKI.Threshold)
		}
	case PKIStatic:
		setDefault(slot.Config, "operator_key", n.PKI.OperatorKey)
	}
	return errors.Join(errs...)
}

// NetworkFileContent returns the network file the config was loaded with,
// or nil when it names none.
func (c *Config) NetworkFileContent() *Network { return c.net }
