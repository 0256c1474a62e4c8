// Command pay-shopper serves the pay-shopper accounting plugin (the
// secret-shopper ledger). Point a provider's accounting slot at this
// binary (or at the builtin of the same name); the node must have a
// storage slot, whose KV holds the auditors' reports.
package main

import (
	"github.com/sottonet/sotto/interfaces"
	shopper "github.com/sottonet/sotto/plugins/pay-shopper"
)

func main() { interfaces.Serve(shopper.Plugin()) }
