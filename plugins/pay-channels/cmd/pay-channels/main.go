// Command pay-channels serves the pay-channels accounting plugin. Point a
// provider's accounting slot at this binary (or at the builtin of the same
// name); the node must have a storage slot, whose KV it offers the plugin
// as the host KV its vouchers and Sotto's own ledger live in.
package main

import (
	"github.com/sottonet/sotto/interfaces"
	channels "github.com/sottonet/sotto/plugins/pay-channels"
)

func main() { interfaces.Serve(channels.Plugin()) }
