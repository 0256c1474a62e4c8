package rewards

import (
	"bytes"
	"strings"
	"testing"
)

const provider = `# TYPE sotto_node_identity gauge
sotto_node_identity{node="aa00000000000000",role="provider"} 1
# TYPE sotto_rewards gauge
sotto_rewards{epoch="7",field="forwarded",node="aa00000000000000",unit="micro-reward"} 10
sotto_rewards{epoch="7",field="probes_sent",node="bb00000000000000",unit="micro-reward"} 120
sotto_rewards{epoch="7",field="probed",node="bb00000000000000",unit="micro-reward"} 84
sotto_rewards{epoch="7",field="amount",node="bb00000000000000",unit="micro-reward"} 0
`

const mix = `# TYPE sotto_node_identity gauge
sotto_node_identity{node="bb00000000000000",role="mix"} 1
`

func TestReportSumsLedgersAndNamesNodes(t *testing.T) {
	r := New(map[string]string{"bb00000000000000": "mix-2-1"})
	for _, m := range []string{provider, provider, mix} { // two ledgers saying the same
		if err := r.Add(strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	tabs := r.Tables()
	if len(tabs) != 1 || tabs[0].Epoch != 7 || len(tabs[0].Rows) != 2 {
		t.Fatalf("tables = %+v", tabs)
	}
	b := tabs[0].Rows[1]
	if b.Role != "mix" || b.Name != "mix-2-1" || b.ProbesSent != 240 || b.Probed != 168 {
		t.Errorf("mix row = %+v", b)
	}
	var out bytes.Buffer
	Write(&out, tabs)
	if !strings.Contains(out.String(), "mix-2-1") || !strings.Contains(out.String(), "epoch 7") {
		t.Errorf("report:\n%s", out.String())
	}
	if err := r.Add(strings.NewReader("not metrics {")); err == nil {
		t.Error("garbage metrics accepted")
	}
}
