// Command storage-badger serves the Badger storage plugin to a Sotto node
// over go-plugin/gRPC. The node starts it (or re-executes itself as
// `sotto plugin storage-badger`) and hands it its JSON config (see the
// plugin's README); run by hand it explains that and exits. Badger's logs
// go to slog's default logger, which Serve carries to the host's log.
package main

import (
	"github.com/sottonet/sotto/interfaces"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

func main() {
	interfaces.Serve(storagebadger.Plugin())
}
