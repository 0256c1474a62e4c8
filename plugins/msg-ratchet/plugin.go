package msgratchet

import (
	"context"
	"fmt"

	"github.com/sottonet/sotto/interfaces"
)

// Config is the plugin's config, as its host hands it (JSON).
type Config struct {
	// Namespace is the namespace of the host KV its state lives in
	// (default "ratchet"; one per local user).
	Namespace string `json:"namespace"`
	// CardOPKs is how many one-time prekeys a card carries (default 4).
	CardOPKs int `json:"card_opks"`
}

// ParseConfig decodes raw (empty: defaults), refusing unknown keys.
func ParseConfig(raw []byte) (Config, error) {
	c := Config{Namespace: "ratchet"}
	if err := interfaces.DecodeConfig(raw, &c); err != nil {
		return c, fmt.Errorf("msg-ratchet config: %w", err)
	}
	if c.Namespace == "" || len(c.Namespace) > interfaces.MaxHostNamespace {
		return c, fmt.Errorf("%w: msg-ratchet config: namespace of %d bytes, want 1..%d", interfaces.ErrInvalidArgument, len(c.Namespace), interfaces.MaxHostNamespace)
	}
	if c.CardOPKs < 0 || c.CardOPKs > maxCardOPKs {
		return c, fmt.Errorf("%w: msg-ratchet config: card_opks %d, want 0..%d", interfaces.ErrInvalidArgument, c.CardOPKs, maxCardOPKs)
	}
	return c, nil
}

// Factory opens the ratchet from its raw config on the host KV (out of
// process: the KV slot the loader offers).
func Factory(ctx context.Context, raw []byte) (interfaces.Messaging, error) {
	c, err := ParseConfig(raw)
	if err != nil {
		return nil, err
	}
	h, ok := interfaces.HostFrom(ctx)
	if !ok || h.KV == nil {
		return nil, fmt.Errorf("%w: msg-ratchet keeps its state in the host KV, and this host offers none", interfaces.ErrUnavailable)
	}
	return OpenWith(ctx, h.KV, c.Namespace, Options{CardOPKs: c.CardOPKs})
}

// Plugin is what the plugin's main serves (and what a host embedding it
// registers as a built-in).
func Plugin() interfaces.Plugin { return interfaces.MessagingPlugin(Factory) }
