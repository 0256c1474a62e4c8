package pkigossip

import (
	"context"
	"fmt"

	"github.com/sottonet/sotto/interfaces"
)

// Plugin is what this plugin's main (and the sotto binary's built-in table)
// hands to interfaces.Serve: it builds a Member from the raw JSON config,
// on the node's epoch clock when the config leaves the clock out.
func Plugin() interfaces.Plugin {
	return interfaces.PKIPlugin(func(ctx context.Context, raw []byte) (interfaces.PKI, error) {
		cfg, err := decodeConfig(raw)
		if err == nil {
			if h, ok := interfaces.HostFrom(ctx); ok {
				err = cfg.adoptClock(h)
			}
		}
		if err == nil {
			cfg.setDefaults()
			err = cfg.Validate()
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", interfaces.ErrInvalidArgument, err)
		}
		m, err := New(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", interfaces.ErrUnavailable, err)
		}
		return m, nil
	})
}
