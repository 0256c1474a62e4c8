package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/localnet"
)

// skewNode restarts node n as if its clock were off by skew (positive: its
// clock is ahead). Every epoch decision of a node (which Sphinx keys it
// accepts, which epoch its PKI member serves and admits) is a function of
// now − genesis, so a node whose clock runs δ ahead behaves, for all of
// them, as a node whose genesis is δ early: the test shifts genesis in the
// node's config (and its PKI plugin's) rather than its clock, so no
// clock-offset option exists for an operator to enable.
func skewNode(t *testing.T, n *localnet.Node, genesis time.Time, skew time.Duration) {
	t.Helper()
	if err := n.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(n.Config)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	g := genesis.Add(-skew)
	cfg["epoch"].(map[string]any)["genesis"] = g.Format(time.RFC3339Nano)
	cfg["plugins"].(map[string]any)["pki"].(map[string]any)["config"].(map[string]any)["genesis"] = g
	if b, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.Config, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
}

// Clock skew across an epoch boundary. The network has one mix per layer,
// so every packet crosses the skewed mix; 30 s epochs with a grace of 3 s.
// Messages are sent from 4 s before a boundary to 2 s after it while the
// mix's clock is off:
//   - 1 s ahead (within the grace): the mix takes the closing epoch's keys
//     for the grace after its own boundary, so nothing is refused;
//   - 5 s behind (beyond the grace): for 5 s after the boundary the mix
//     refuses packets under the new epoch's keys (it does not hold that
//     epoch yet); they are lost and retransmitted.
//
// What must hold in both: every message sent is acknowledged and delivered
// exactly once, and the mix keeps running. What is refused (the packets
// under keys outside the mix's window) is what the retransmissions cover;
// a skew beyond the grace costs latency, not messages.
func TestFaultClockSkewAcrossAnEpochBoundary(t *testing.T) {
	t.Parallel() // a network of its own (localnet_test.go, "Parallel tests")
	ln := startNet(t, localnet.Spec{Layers: 2, MixesPerLayer: 1, Providers: 2, EpochPeriod: 30 * time.Second,
		Params: interfaces.NetworkParams{Mu: 20, LambdaP: 5, LambdaL: 1, LambdaD: 1, LambdaM: 1}})
	provs := ln.Providers()
	mix := ln.Mixes()[0]
	dir := t.TempDir()
	state := filepath.Join(dir, "carol.json")
	contact := contactOf(t, provs[1], state)
	for _, skew := range []time.Duration{time.Second, -5 * time.Second} {
		t.Run(fmt.Sprintf("mix clock %v", skew), func(t *testing.T) {
			// Restart the mix well inside an epoch (8 s past a boundary, 14 s
			// before the next): a node restarted with its clock behind just
			// after a boundary finds its previous epoch's key already deleted
			// and refuses to start ("no Sphinx key for the current epoch"), a
			// clear error but not the fault under test. The restarted mix
			// then has 10 s to rejoin before the boundary.
			for u := ln.Clock.UntilNext(time.Now()); u < 14*time.Second || u > ln.Clock.Period()-8*time.Second; u = ln.Clock.UntilNext(time.Now()) {
				time.Sleep(500 * time.Millisecond)
			}
			skewNode(t, mix, ln.Genesis, skew)
			// Send from 4 s before the boundary to 2 s after.
			time.Sleep(ln.Clock.UntilNext(time.Now()) - 4*time.Second)
			recv := startSotto(t, nil, "recv", "--state", state, "--count", "4", "--wait", "150s")
			want := map[string]bool{}
			var sends sync.WaitGroup
			for i := range 4 {
				m := fmt.Sprintf("skew %v message %d", skew, i)
				want[m] = true
				sends.Go(func() { sendAll(t, provs[0], dir, contact, 120*time.Second, m) })
				if i < 3 {
					time.Sleep(2 * time.Second)
				}
			}
			sends.Wait()
			recv.line(t, 60*time.Second) // the contact
			got, err := recv.rest(t, 150*time.Second)
			if err != nil {
				t.Fatalf("recv: %v", err)
			}
			if !mix.Running() {
				t.Fatalf("the skewed mix exited")
			}
			t.Logf("mix clock %v: sent 4 across the boundary, delivered %d", skew, len(got))
			eachOnce(t, got, want)
		})
	}
}
