package config

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/sottonet/sotto/host/plugin"
)

// PluginSlot names the plugin that fills one slot: a built-in plugin by
// name, or an external executable by path, plus the plugin's own config,
// which the node hands to it as JSON (see host/plugin.Config.RawConfig).
type PluginSlot struct {
	Builtin     string         `koanf:"builtin"`
	Path        string         `koanf:"path"`
	Args        []string       `koanf:"args"`
	Config      map[string]any `koanf:"config"`
	CallTimeout time.Duration  `koanf:"call_timeout"`
}

// IsSet reports whether the slot names a plugin.
func (s *PluginSlot) IsSet() bool { return s.Builtin != "" || s.Path != "" }

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
	}, nil
}
