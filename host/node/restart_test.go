package node

import (
	"context"
	"testing"

	"github.com/sottonet/sotto/interfaces"
)

// A node restarted within an epoch with other addresses publishes no
// second descriptor for that epoch (equivocation would be recorded
// against it) and says when its new addresses take effect; one that only
// added an address republishes its first descriptor.
func TestRestartWithOtherAddressesIsNotEquivocation(t *testing.T) {
	tn, logs := newLoggedNet(t, netSpec{mixes: 2, providers: 1, layers: 2, mu: 200})
	tnode := tn.nodes[0]
	old := tnode.n.Host().Addrs()[0].String()
	e := tn.pki.Clock().Now()
	for i, tc := range []struct {
		listen []string
		want   string
	}{
		{[]string{old, "/ip4/127.0.0.1/tcp/0"}, "it keeps its first descriptor for that epoch"},
		{[]string{"/ip4/127.0.0.1/tcp/0"}, "it publishes nothing more for it"},
	} {
		if err := tnode.halt(); err != nil {
			t.Fatalf("stop %d: %v", i, err)
		}
		tnode.cfg.Listen = tc.listen
		tnode.start(t, tn)
		waitFor(t, 20e9, "the restarted node to route", func() bool {
			select {
			case <-tnode.n.Ready():
				return true
			default:
				return false
			}
		})
		if logs.count(tc.want) == 0 {
			t.Errorf("restart %d: no log line %q", i, tc.want)
		}
		ev, err := tn.pki.Evidence(context.Background(), &interfaces.EvidenceRequest{Epoch: e})
		if err != nil || len(ev.Equivocations) != 0 {
			t.Fatalf("restart %d: equivocation recorded: %v %v", i, ev, err)
		}
	}
}
