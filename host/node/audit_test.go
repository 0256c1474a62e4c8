package node

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sottonet/sotto/core/audit"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/interfaces"
	shopper "github.com/sottonet/sotto/plugins/pay-shopper"
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

// A provider's metrics carry what its auditor reported (per mix and epoch)
// and its accounting plugin's scheme and short parameters, for a rewards
// gatherer to take the median over auditors.
func TestMetricsCarryTheAuditorsMeasurementsAndTheLedgersParameters(t *testing.T) {
	clk, err := epoch.New(time.Now().Add(-time.Hour), time.Minute, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{cfg: &config.Config{Role: "provider"}, clk: clk, id: [32]byte{9}}
	n.opts.Accounting = shopper.New(shopper.DefaultConfig)
	mixA, mixB := [32]byte{1}, [32]byte{2}
	for e := epoch.Epoch(1); e <= 6; e++ {
		n.audited.put(e, auditRecords([]audit.Outcome{{Path: audit.Path{mixA, mixB}, Sent: uint64(10 * e), Returned: uint64(9 * e)}}))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newEarningsCollector(n))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	probes, info := map[string]float64{}, ""
	for _, f := range mfs {
		for _, m := range f.Metric {
			l := map[string]string{}
			for _, lp := range m.Label {
				l[lp.GetName()] = lp.GetValue()
			}
			switch f.GetName() {
			case "sotto_audit_probes":
				probes[l["epoch"]+"/"+l["node"][:2]+"/"+l["field"]] = m.GetGauge().GetValue()
			case "sotto_accounting_info":
				info = l["scheme"] + " " + l["params"]
			}
		}
	}
	if len(probes) != earningsEpochs*2*2 {
		t.Errorf("%d audit samples, want the last %d epochs × 2 mixes × 2 fields: %v", len(probes), earningsEpochs, probes)
	}
	if probes["6/01/probes_sent"] != 60 || probes["6/02/probed"] != 60 || probes["1/01/probes_sent"] != 0 {
		t.Errorf("audit samples %v: want epoch 6's 60 sent through mix 1 and 60 inferred back through mix 2 (the best of its layer), epoch 1 forgotten", probes)
	}
	if info != `shopper {"budget":1000000,"threshold":0.9,"min_probes":10}` {
		t.Errorf("accounting info %q", info)
	}
}
