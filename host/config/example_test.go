package config_test

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/sottonet/sotto/host/config"
)

// A node reads its file, then the environment, then its flags, and checks
// the result as a whole.
func ExampleLoad() {
	flags := pflag.NewFlagSet("node", pflag.ContinueOnError)
	config.RegisterFlags(flags)
	_ = flags.Parse([]string{"--data-dir", "/srv/sotto"})

	c, err := config.Load(config.Sources{
		File:    "testdata/provider.yaml",
		Environ: []string{"SOTTO_PROVIDER__MAILBOX_LIFETIME=48h", "SOTTO_MIXING__UNWRAP_WORKERS=4"},
		Flags:   flags,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Role, c.DataDir, c.Provider.MailboxLifetime, c.Mixing.UnwrapWorkers)
	fmt.Println("valid:", c.Validate() == nil)

	c.Role, c.Mix.Layer, c.Epoch.Grace = config.RoleMix, 7, c.Epoch.Period
	c.Metrics.Listen = "0.0.0.0:4101"
	fmt.Println(c.Validate())
	// Output:
	// provider /srv/sotto 48h0m0s 4
	// valid: true
	// mix.layer: is ignored (the PKI document deals layers), but must be 0..3, got 7
	// listen[2]: "/ip4/0.0.0.0/tcp/4102/ws": WebSocket listeners are for providers only
	// metrics.listen: tcp port 4101 is already taken by plugins.pki.config.listen[0]
	// epoch.grace: must be in [0, epoch.period 20m0s), got 20m0s
}
