// Command storage-postgres serves the PostgreSQL storage plugin to a Sotto
// node over go-plugin/gRPC. The node starts it (or re-executes itself as
// `sotto plugin storage-postgres`) and hands it its JSON config (see the
// plugin's README); run by hand it explains that and exits.
package main

import (
	"github.com/sottonet/sotto/interfaces"
	storagepostgres "github.com/sottonet/sotto/plugins/storage-postgres"
)

func main() {
	interfaces.Serve(storagepostgres.Plugin())
}
