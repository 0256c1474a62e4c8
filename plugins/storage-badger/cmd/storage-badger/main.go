// Command storage-badger serves the Badger storage plugin to a Sotto node
// over go-plugin/gRPC. The node starts it (or re-executes itself as
// `sotto plugin storage-badger`) and hands it its JSON config; run by hand
// it explains that and exits.
package main

import (
	"context"
	"fmt"

	"github.com/sottonet/sotto/interfaces"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

func main() {
	interfaces.Serve(interfaces.StoragePlugin(open))
}

// open is the plugin's factory: it runs when the host configures the
// plugin. Badger's logs go to slog's default logger, which Serve carries
// to the host's log.
func open(_ context.Context, raw []byte) (interfaces.Storage, error) {
	cfg, err := storagebadger.ParseConfig(raw)
	if err != nil {
		return nil, err
	}
	s, err := storagebadger.Open(cfg)
	if err != nil {
		return nil, fmt.Errorf("storage-badger: %w", err)
	}
	return s, nil
}
