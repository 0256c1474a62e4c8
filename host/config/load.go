package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// EnvPrefix starts every environment variable the config reads.
const EnvPrefix = "SOTTO_"

// Sources are where Load reads, lowest precedence first.
type Sources struct {
	// File is a YAML file; empty means none.
	File string
	// Environ is the environment as os.Environ returns it; nil means
	// os.Environ(). Only SOTTO_ variables are read.
	Environ []string
	// Flags, if set, must hold the flags of RegisterFlags; only flags the
	// user changed override the file and environment.
	Flags *pflag.FlagSet
}

// flagKeys maps the command-line flags to config keys. Only the settings an
// operator commonly overrides per run have flags; everything has a key.
var flagKeys = map[string]string{
	"role":           "role",
	"network":        "network",
	"data-dir":       "data_dir",
	"listen":         "listen",
	"network-file":   "network_file",
	"layer":          "mix.layer",
	"metrics-listen": "metrics.listen",
}

// RegisterFlags adds the config's flags to fs.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.String("role", "", "node role: mix or provider (key role)")
	fs.String("network", "", "network name (key network; default: the network file's)")
	fs.String("network-file", "", "the network file, from `sotto network init` (key network_file)")
	fs.String("data-dir", "", "directory of keys and state (key data_dir)")
	fs.StringSlice("listen", nil, "libp2p listen multiaddrs, comma-separated (key listen)")
	fs.Int("layer", 0, "ignored: the PKI document deals mixes into layers (key mix.layer)")
	fs.String("metrics-listen", "", "host:port of /metrics, empty to disable (key metrics.listen)")
}

// Load reads the config from its sources over the defaults. It reports
// unreadable files, malformed YAML and values of the wrong type or under
// unknown keys, wrapping ErrInvalid for the latter three; it does not call
// Validate.
func Load(src Sources) (Config, error) {
	k := koanf.New(".")
	if src.File != "" {
		if err := checkConfigFile(src.File); err != nil {
			return Config{}, err
		}
		b, err := os.ReadFile(src.File)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		if err := k.Load(rawbytes.Provider(b), yaml.Parser()); err != nil {
			return Config{}, fmt.Errorf("%w: %s: %w", ErrInvalid, src.File, err)
		}
	}
	environ := src.Environ
	if environ == nil {
		environ = os.Environ()
	}
	environ = withoutOtherSottoVars(environ)
	environ, err := loadPluginConfigDocs(k, environ)
	if err != nil {
		return Config{}, err
	}
	if err := k.Load(env.Provider(".", env.Opt{
		Prefix:        EnvPrefix,
		TransformFunc: envKey,
		EnvironFunc:   func() []string { return environ },
	}), nil); err != nil {
		return Config{}, fmt.Errorf("%w: environment: %w", ErrInvalid, err)
	}
	if src.Flags != nil {
		fs := src.Flags
		if err := k.Load(posflag.ProviderWithFlag(fs, ".", nil, func(f *pflag.Flag) (string, any) {
			key, ok := flagKeys[f.Name]
			if !ok {
				return "", nil
			}
			return key, posflag.FlagVal(fs, f)
		}), nil); err != nil {
			return Config{}, fmt.Errorf("%w: flags: %w", ErrInvalid, err)
		}
	}
	c, err := decode(k)
	if err != nil || c.NetworkFile == "" {
		return c, err
	}
	dir := "" // a network file named by a flag is relative to the working directory
	if src.File != "" && (src.Flags == nil || !src.Flags.Changed("network-file")) {
		dir = filepath.Dir(src.File)
	}
	return c, c.applyNetwork(k, dir)
}

// Parse reads a config from YAML bytes alone, over the defaults.
func Parse(b []byte) (Config, error) {
	k := koanf.New(".")
	if err := k.Load(rawbytes.Provider(b), yaml.Parser()); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	c, err := decode(k)
	if err != nil || c.NetworkFile == "" {
		return c, err
	}
	return c, c.applyNetwork(k, "")
}

// loadPluginConfigDocs applies the variables that set a plugin's whole
// config as a JSON document (SOTTO_PLUGINS__ACCOUNTING__CONFIG='{"quota":
// 3}'): each replaces that slot's config from the file. It returns the
// other variables, which then apply over it (per-key config variables
// included).
func loadPluginConfigDocs(k *koanf.Koanf, environ []string) ([]string, error) {
	rest := make([]string, 0, len(environ))
	type doc struct {
		name, key string
		value     map[string]any
	}
	var docs []doc
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			rest = append(rest, kv)
			continue
		}
		key := envKeyName(name)
		if parts := strings.Split(key, "."); len(parts) != 3 || parts[0] != "plugins" || parts[2] != "config" {
			rest = append(rest, kv)
			continue
		}
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(value))
		dec.UseNumber() // 1e3 and 2^63 arrive as the plugin would read them from a file
		if err := dec.Decode(&m); err != nil || dec.More() || m == nil {
			if err == nil {
				err = errors.New("trailing data or null")
			}
			return nil, fmt.Errorf("%w: environment: %s: want the plugin's whole config as a JSON object, e.g. %s='{\"key\": 3}': %v",
				ErrInvalid, name, name, err)
		}
		docs = append(docs, doc{name, key, m})
	}
	slices.SortFunc(docs, func(a, b doc) int { return strings.Compare(a.name, b.name) })
	for _, d := range docs {
		k.Delete(d.key)
		if err := k.Set(d.key, d.value); err != nil {
			return nil, fmt.Errorf("%w: environment: %s: %w", ErrInvalid, d.name, err)
		}
	}
	return rest, nil
}

func envKeyName(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "__", ".")
}

// envKey turns SOTTO_MIX__UNWRAP_WORKERS into mix.unwrap_workers; list
// keys get their comma-separated value split, and a key inside a plugin's
// config (SOTTO_PLUGINS__ACCOUNTING__CONFIG__QUOTA=3) its value read as
// JSON when it is JSON, so that 3 is a number, true a boolean and
// '"3"' a string; anything else stays the string it is.
func envKey(name, value string) (string, any) {
	key := envKeyName(name)
	if key == "" {
		return "", nil
	}
	if parts := strings.SplitN(key, ".", 4); len(parts) == 4 && parts[0] == "plugins" && parts[2] == "config" {
		dec := json.NewDecoder(strings.NewReader(value))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err == nil && !dec.More() {
			return key, v
		}
		return key, value
	}
	if key == "listen" || strings.HasSuffix(key, ".args") {
		var parts []string
		for p := range strings.SplitSeq(value, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		return key, parts
	}
	return key, value
}

func decode(k *koanf.Koanf) (Config, error) {
	c := Default()
	err := k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				mapstructure.StringToTimeDurationHookFunc(),
				mapstructure.StringToTimeHookFunc(time.RFC3339),
				mapstructure.StringToSliceHookFunc(","),
			),
			WeaklyTypedInput: true,
			ErrorUnused:      true,
			TagName:          "koanf",
		},
	})
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return c, nil
}

// otherSottoVars are SOTTO_ variables that other parts of Sotto read, not
// the node's config: the plugin handshake's cookie and debug switch, and
// what the tests read (the vector files, test modes). The config refuses
// any other SOTTO_ variable it does not know, so a misspelt setting never
// passes silently; these it leaves alone.
var otherSottoVars = map[string]bool{
	"SOTTO_PLUGIN_KIND":       true, // interfaces.CookieKey
	"SOTTO_PLUGIN_DEBUG":      true, // a plugin's reattach mode
	"SOTTO_REQUIRE_VECTORS":   true, // internal/vectors: CI requires the published vectors
	"SOTTO_SPHINX_VECTORS":    true, // internal/vectors: a named Sphinx vector file
	"SOTTO_CLIENT_TEST_STATE": true,
	"SOTTO_POSTGRES_DSN":      true, // internal/pgtest: the test database .ci/postgres.sh starts
	"SOTTO_REQUIRE_POSTGRES":  true, // internal/pgtest: CI requires it
}

func withoutOtherSottoVars(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if otherSottoVars[name] || strings.HasPrefix(name, EnvPrefix+"TEST_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
