// Command accounting-free serves the accounting-free plugin. Point a node's
// accounting slot at this binary (path = "/path/to/accounting-free"); the
// node must have a storage slot, whose KV it offers the plugin as the host
// KV its counts live in.
package main

import (
	accountingfree "github.com/sottonet/sotto/examples/accounting-free"
	"github.com/sottonet/sotto/interfaces"
)

func main() { interfaces.Serve(accountingfree.Plugin()) }
