// Command accounting-free serves the accounting-free plugin. Point a node's
// accounting slot at this binary (path = "/path/to/accounting-free").
package main

import (
	"context"

	accountingfree "github.com/sottonet/sotto/examples/accounting-free"
	"github.com/sottonet/sotto/interfaces"
)

func main() {
	interfaces.Serve(interfaces.AccountingPlugin(func(_ context.Context, raw []byte) (interfaces.Accounting, error) {
		cfg, err := accountingfree.ParseConfig(raw)
		if err != nil {
			return nil, err
		}
		return accountingfree.New(cfg), nil
	}))
}
