package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sottonet/sotto/host/plugin"
)

// PluginSlot names the plugin that fills one slot: a built-in plugin by
// name, or an external executable by path, plus the plugin's own config,
// which the node hands to it as JSON (see host/plugin.Config.RawConfig).
//
// From the environment, a plugin's config is set whole as a JSON document,
// SOTTO_PLUGINS__ACCOUNTING__CONFIG='{"quota": 3}', which replaces the
// file's; or key by key, SOTTO_PLUGINS__ACCOUNTING__CONFIG__QUOTA=3, whose
// value is read as JSON when it is JSON (3 a number, true a boolean,
// '"3"' a string) and as a string otherwise; nested keys take more
// double underscores. Per-key variables apply over a document. Variable
// names are lower-cased, so a key with capitals needs the document form.
type PluginSlot struct {
	Builtin     string         `koanf:"builtin"`
	Path        string         `koanf:"path"`
	Args        []string       `koanf:"args"`
	Config      map[string]any `koanf:"config"`
	CallTimeout time.Duration  `koanf:"call_timeout"`
	// SHA256 pins Path's executable (hex, as `sha256sum` prints it): the
	// node refuses to start a file whose hash differs.
	SHA256 string `koanf:"sha256"`
	// Reattach points the slot at a plugin already running in debug mode
	// (the JSON it printed; see docs/PLUGINS.md) instead of starting one.
	// Usually set for one run from the environment, as the plugin says:
	// SOTTO_PLUGINS__ACCOUNTING__REATTACH='{...}'.
	Reattach string `koanf:"reattach"`
}

// IsSet reports whether the slot names a plugin.
func (s *PluginSlot) IsSet() bool { return s.Builtin != "" || s.Path != "" || s.Reattach != "" }

func (s *PluginSlot) validate(path string, required bool) error {
	switch {
	case !s.IsSet() && required:
		return problem(path, "must name a plugin (builtin: NAME or path: EXECUTABLE)")
	case !s.IsSet():
		if len(s.Args) > 0 || len(s.Config) > 0 {
			return problem(path, "has args or config but names no plugin (set builtin or path)")
		}
		return nil
	case s.Builtin != "" && s.Path != "":
		return problem(path, "set exactly one of builtin and path, got both")
	case s.SHA256 != "" && s.Path == "":
		return problem(path+".sha256", "pins an external executable, but the slot names no path")
	case s.SHA256 != "" && !isSHA256(s.SHA256):
		return problem(path+".sha256", "must be 64 hex digits (as sha256sum prints them), got %q", s.SHA256)
	case s.Reattach != "" && !json.Valid([]byte(s.Reattach)):
		return problem(path+".reattach", "must be the JSON a plugin in debug mode printed, got %q", s.Reattach)
	case s.Builtin != "" && len(s.Args) > 0:
		return problem(path, "args are for external plugins (path), not built-in ones")
	case s.CallTimeout < 0:
		return problem(path+".call_timeout", "must not be negative, got %v", s.CallTimeout)
	}
	if _, err := json.Marshal(s.Config); err != nil {
		return problem(path+".config", "cannot be encoded as JSON: %v", err)
	}
	return nil
}

// PluginConfig returns the loader's config for this slot, of the given kind
// ("pki", "storage", "accounting").
func (s *PluginSlot) PluginConfig(kind string) (plugin.Config, error) {
	var raw []byte
	if len(s.Config) > 0 {
		b, err := json.Marshal(s.Config)
		if err != nil {
			return plugin.Config{}, fmt.Errorf("%w: plugins.%s.config: %w", ErrInvalid, kind, err)
		}
		raw = b
	}
	return plugin.Config{
		Name: kind, Kind: kind,
		Builtin: s.Builtin, Path: s.Path, Args: s.Args,
		RawConfig: raw, CallTimeout: s.CallTimeout,
		SHA256: s.SHA256, Reattach: s.Reattach,
	}, nil
}

func isSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}
