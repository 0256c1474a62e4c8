// Command pki-static serves the static, operator-signed PKI plugin to a
// Sotto node over go-plugin/gRPC. The node starts it (or re-executes itself
// as `sotto plugin pki-static`) and hands it its JSON config (see the
// plugin's README); run by hand it explains that and exits.
package main

import (
	"github.com/sottonet/sotto/interfaces"
	pkistatic "github.com/sottonet/sotto/plugins/pki-static"
)

func main() {
	interfaces.Serve(pkistatic.Plugin())
}
