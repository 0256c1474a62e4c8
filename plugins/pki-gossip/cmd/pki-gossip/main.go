// Command pki-gossip serves the gossip PKI plugin to a Sotto node over
// go-plugin/gRPC. The node starts it (or re-executes itself as
// `sotto plugin pki-gossip`) and hands it its JSON config (see the plugin's
// README); run by hand it explains that and exits.
package main

import (
	"github.com/sottonet/sotto/interfaces"
	pkigossip "github.com/sottonet/sotto/plugins/pki-gossip"
)

func main() {
	interfaces.Serve(pkigossip.Plugin())
}
