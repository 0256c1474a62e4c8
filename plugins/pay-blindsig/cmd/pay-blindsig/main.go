// Command pay-blindsig serves the pay-blindsig accounting plugin. Point a
// provider's accounting slot at this binary (or at the builtin of the same
// name); the node must have a storage slot, whose KV it offers the plugin
// as the host KV its keys and spent tokens live in.
package main

import (
	"github.com/sottonet/sotto/interfaces"
	blindsig "github.com/sottonet/sotto/plugins/pay-blindsig"
)

func main() { interfaces.Serve(blindsig.Plugin()) }
