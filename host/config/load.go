package config

import (
	"fmt"
	"os"
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
	"layer":          "mix.layer",
	"metrics-listen": "metrics.listen",
}

// RegisterFlags adds the config's flags to fs.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.String("role", "", "node role: mix or provider (key role)")
	fs.String("network", "", "network name (key network)")
	fs.String("data-dir", "", "directory of keys and state (key data_dir)")
	fs.StringSlice("listen", nil, "libp2p listen multiaddrs, comma-separated (key listen)")
	fs.Int("layer", 0, "mix layer 1..3 (key mix.layer)")
	fs.String("metrics-listen", "", "host:port of /metrics, empty to disable (key metrics.listen)")
}

// Load reads the config from its sources over the defaults. It reports
// unreadable files, malformed YAML and values of the wrong type or under
// unknown keys, wrapping ErrInvalid for the latter three; it does not call
// Validate.
func Load(src Sources) (Config, error) {
	k := koanf.New(".")
	if src.File != "" {
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
	return decode(k)
}

// Parse reads a config from YAML bytes alone, over the defaults.
func Parse(b []byte) (Config, error) {
	k := koanf.New(".")
	if err := k.Load(rawbytes.Provider(b), yaml.Parser()); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return decode(k)
}

// envKey turns SOTTO_MIX__UNWRAP_WORKERS into mix.unwrap_workers; list
// keys get their comma-separated value split.
func envKey(name, value string) (string, any) {
	key := strings.ToLower(strings.TrimPrefix(name, EnvPrefix))
	key = strings.ReplaceAll(key, "__", ".")
	if key == "" {
		return "", nil
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
