package node

import (
	"testing"

	"github.com/sottonet/sotto/core/audit"
	"github.com/sottonet/sotto/interfaces"
)

func TestAuditRecordsChargeTheLossyMix(t *testing.T) {
	a, b, c, d := [32]byte{1}, [32]byte{2}, [32]byte{3}, [32]byte{4}
	outs := []audit.Outcome{
		{Path: audit.Path{a, c}, Sent: 100, Returned: 70},
		{Path: audit.Path{a, d}, Sent: 100, Returned: 70},
		{Path: audit.Path{b, c}, Sent: 100, Returned: 100},
		{Path: audit.Path{b, d}, Sent: 100, Returned: 100},
	}
	got := map[[32]byte]map[interfaces.WorkKind]uint64{}
	for _, r := range auditRecords(outs) {
		if got[r.Node] == nil {
			got[r.Node] = map[interfaces.WorkKind]uint64{}
		}
		got[r.Node][r.Kind] += r.Packets
	}
	for _, m := range [][32]byte{a, b, c, d} {
		if got[m][interfaces.WorkProbeSent] != 200 {
			t.Errorf("mix %x: %d probes sent, want 200", m[0], got[m][interfaces.WorkProbeSent])
		}
	}
	if got[a][interfaces.WorkProbed] != 140 || got[b][interfaces.WorkProbed] != 200 || got[c][interfaces.WorkProbed] != 200 {
		t.Errorf("probed: a %d b %d c %d, want 140 200 200", got[a][interfaces.WorkProbed], got[b][interfaces.WorkProbed], got[c][interfaces.WorkProbed])
	}
}
