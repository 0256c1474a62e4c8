package storagebadger

import (
	"context"
	"fmt"

	"github.com/sottonet/sotto/interfaces"
)

// Plugin is what a main hands to interfaces.Serve: the storage kind with a
// factory that parses the host's raw JSON config (see ParseConfig) and
// opens the store. Serve closes the store when the host stops the plugin.
// cmd/storage-badger and `sotto plugin storage-badger` both serve it.
func Plugin() interfaces.Plugin {
	return interfaces.StoragePlugin(func(_ context.Context, raw []byte) (interfaces.Storage, error) {
		cfg, err := ParseConfig(raw)
		if err != nil {
			return nil, err
		}
		s, err := Open(cfg)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", interfaces.ErrUnavailable, err)
		}
		return s, nil
	})
}
