package pkigossip

import (
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/pkitest"
)

func gossipHarness(t *testing.T, wrap func(testing.TB, interfaces.PKI) interfaces.PKI) *pkitest.Harness {
	m := startMembers(t, 2, testConfig(time.Now(), time.Minute), 3)
	return &pkitest.Harness{
		PKI: wrap(t, m[0]), Network: "testnet", Epoch: m[0].Clock().Now() + 1,
		Accepts: true, Settle: 5 * time.Second,
	}
}

func TestConformanceInProcess(t *testing.T) {
	pkitest.Run(t, func(t *testing.T) *pkitest.Harness {
		return gossipHarness(t, func(_ testing.TB, p interfaces.PKI) interfaces.PKI { return p })
	})
}

func TestConformanceOverGRPC(t *testing.T) {
	pkitest.Run(t, func(t *testing.T) *pkitest.Harness { return gossipHarness(t, pkitest.OverGRPC) })
}
