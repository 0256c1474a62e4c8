package pkigossip_test

import (
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/pkitest"
	"github.com/sottonet/sotto/interfaces/plugintest"
	pkigossip "github.com/sottonet/sotto/plugins/pki-gossip"
)

// The plugin's own main, built as a separate executable and supervised by
// the host's plugin loader, passes the conformance suite.
func TestConformanceAsAPluginProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	bin := plugintest.Build(t, "github.com/sottonet/sotto/plugins/pki-gossip/cmd/pki-gossip")
	genesis := time.Now().Truncate(time.Second)
	pkitest.Run(t, func(t *testing.T) *pkitest.Harness {
		cfg := pkigossip.Config{
			Network: "testnet", Listen: []string{"/ip4/127.0.0.1/tcp/0"},
			Genesis: genesis, EpochPeriod: time.Minute, StateDir: t.TempDir() + "/pki",
			Admission: pkigossip.Admission{Policy: "none"},
			Params:    interfaces.NetworkParams{Hops: 3, PayloadLen: 2048, Layers: 3, Mu: 1, LambdaP: 1, LambdaL: 1, LambdaD: 1, LambdaM: 1},
		}
		raw, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		pki := plugintest.Process(t, interfaces.PKIKind, exec.Command(bin), raw).(interfaces.PKI)
		clock, _ := epoch.New(genesis, time.Minute, 0)
		return &pkitest.Harness{PKI: pki, Network: "testnet", Epoch: clock.Now() + 1, Accepts: true, Settle: 5 * time.Second}
	})
}
