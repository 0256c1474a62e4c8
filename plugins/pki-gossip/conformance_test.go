package pkigossip

import (
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/pkitest"
)

// gossipHarness runs the suite against the first of two members. Its
// state_dir makes the restart case meaningful: the member is reopened
// with no peer to dial, so it serves what it kept on disk.
func gossipHarness(t *testing.T, wrap func(testing.TB, interfaces.PKI) interfaces.PKI) *pkitest.Harness {
	cfg := testConfig(time.Now(), time.Minute)
	cfg.StateDir = t.TempDir()
	m := startMembers(t, 2, cfg, 3)
	h := &pkitest.Harness{
		PKI: wrap(t, m[0]), Network: "testnet", Epoch: m[0].Clock().Now() + 1,
		Accepts: true, Settle: 5 * time.Second,
	}
	h.Reopen = func(t *testing.T) interfaces.PKI {
		m[0].Close()
		again, err := New(t.Context(), cfg) // no bootstrap: only the disk
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { again.Close() })
		return wrap(t, again)
	}
	return h
}

func TestConformanceInProcess(t *testing.T) {
	pkitest.Run(t, func(t *testing.T) *pkitest.Harness {
		return gossipHarness(t, func(_ testing.TB, p interfaces.PKI) interfaces.PKI { return p })
	})
}

func TestConformanceOverGRPC(t *testing.T) {
	pkitest.Run(t, func(t *testing.T) *pkitest.Harness { return gossipHarness(t, pkitest.OverGRPC) })
}
