package storagepostgres

import (
	"context"

	"github.com/sottonet/sotto/interfaces"
)

// Plugin is what a main hands to interfaces.Serve: the storage kind with a
// factory that parses the host's raw JSON config (see ParseConfig) and
// opens the store (a database it cannot reach is an error wrapping
// interfaces.ErrUnavailable). Serve closes the store when the host stops
// the plugin. cmd/storage-postgres and `sotto plugin storage-postgres`
// both serve it.
func Plugin() interfaces.Plugin {
	return interfaces.StoragePlugin(func(ctx context.Context, raw []byte) (interfaces.Storage, error) {
		cfg, err := ParseConfig(raw)
		if err != nil {
			return nil, err
		}
		return Open(ctx, cfg)
	})
}
