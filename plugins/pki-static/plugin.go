package pkistatic

import (
	"context"

	"github.com/sottonet/sotto/interfaces"
)

// Plugin is what this plugin's main (and the sotto binary's built-in table)
// hands to interfaces.Serve: it opens the operator's documents from the raw
// JSON config.
func Plugin() interfaces.Plugin {
	return interfaces.PKIPlugin(func(_ context.Context, raw []byte) (interfaces.PKI, error) {
		cfg, err := ParseConfig(raw)
		if err != nil {
			return nil, err
		}
		return Open(cfg)
	})
}
