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
	fmt.Println(c.Validate())
	// Output:
	// provider /srv/sotto 48h0m0s 4
	// valid: true
	// mix.layer: must be 1..3 for a mix, got 7
	// listen[2]: "/ip4/0.0.0.0/tcp/4101/ws": WebSocket listeners are for providers only
	// epoch.grace: must be in [0, epoch.period 20m0s), got 20m0s
}
