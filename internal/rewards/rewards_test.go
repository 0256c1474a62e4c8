package rewards

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// id is a 64-hex-digit node ID starting with b.
func id(b string) string { return b + strings.Repeat("0", 64-len(b)) }

var (
	mixA, mixB, mixC = id("a1"), id("b2"), id("c3")
	prov1, prov2     = id("d4"), id("e5")
	prov3            = id("f6")
)

// node is one node's metrics: its identity, then lines.
func node(hex, role string, lines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# TYPE sotto_node_identity gauge\nsotto_node_identity{node=%q,role=%q} 1\n", hex, role)
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

const shopperInfo = `sotto_accounting_info{params="{\"budget\":1000000,\"threshold\":0.9,\"min_probes\":10}",scheme="shopper"} 1`

func audit(epoch int, node string, sent, back int) string {
	return fmt.Sprintf("sotto_audit_probes{epoch=\"%d\",field=\"probes_sent\",node=%q} %d\nsotto_audit_probes{epoch=\"%d\",field=\"probed\",node=%q} %d",
		epoch, node, sent, epoch, node, back)
}

func reward(epoch int, node, field, unit string, v int) string {
	return fmt.Sprintf("sotto_rewards{epoch=\"%d\",field=%q,node=%q,unit=%q} %d", epoch, field, node, unit, v)
}

// auditor is a shopper provider that measured mixes A, B, C.
func auditor(hex string, a, b, c [2]int) string {
	return node(hex, "provider", shopperInfo,
		audit(7, mixA, a[0], a[1]), audit(7, mixB, b[0], b[1]), audit(7, mixC, c[0], c[1]))
}

func report(t *testing.T, metrics ...string) Table {
	t.Helper()
	r := New(map[string]string{mixA: "mix-a", mixB: "mix-b", mixC: "mix-c"})
	for _, m := range append(metrics, node(mixA, "mix"), node(mixB, "mix"), node(mixC, "mix")) {
		if err := r.Add(strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	tabs := r.Tables()
	if len(tabs) != 1 {
		t.Fatalf("%d tables, want 1: %+v", len(tabs), tabs)
	}
	return tabs[0]
}

func rowOf(t *testing.T, tab Table, hex string) Row {
	t.Helper()
	for _, r := range tab.Rows {
		if r.Node == hex {
			return r
		}
	}
	t.Fatalf("no row for %s", hex[:4])
	return Row{}
}

func TestTheScoreIsTheMedianOverAuditors(t *testing.T) {
	tab := report(t,
		auditor(prov1, [2]int{100, 97}, [2]int{100, 95}, [2]int{100, 60}),
		auditor(prov2, [2]int{100, 93}, [2]int{100, 99}, [2]int{100, 70}),
		auditor(prov3, [2]int{100, 99}, [2]int{100, 91}, [2]int{100, 65}))
	if tab.Settlement != "shopper" || tab.Budget != 3_000_000 {
		t.Fatalf("settlement %q budget %d, want shopper over three ledgers' 3000000", tab.Settlement, tab.Budget)
	}
	for _, c := range []struct {
		node       string
		score      float64
		sent, back uint64
		paid       bool
	}{{mixA, 0.97, 300, 289, true}, {mixB, 0.95, 300, 285, true}, {mixC, 0.65, 300, 195, false}} {
		r := rowOf(t, tab, c.node)
		if r.Score != c.score || r.Auditors != 3 || r.ProbesSent != c.sent || r.Probed != c.back || (r.Amount > 0) != c.paid {
			t.Errorf("%s: score %v by %d auditors, %d of %d back, amount %d; want the median %v, %d of %d, paid %v",
				r.Name, r.Score, r.Auditors, r.Probed, r.ProbesSent, r.Amount, c.score, c.back, c.sent, c.paid)
		}
	}
	if a, b := rowOf(t, tab, mixA).Amount, rowOf(t, tab, mixB).Amount; a+b > 3_000_000 || a+b < 2_999_998 {
		t.Errorf("the honest mixes share %d + %d, want the whole 3000000", a, b)
	}
}

func TestOneLyingAuditorAloneCannotZeroAnHonestMix(t *testing.T) {
	honest1 := auditor(prov1, [2]int{100, 97}, [2]int{100, 95}, [2]int{100, 60})
	honest2 := auditor(prov2, [2]int{100, 93}, [2]int{100, 99}, [2]int{100, 70})
	// The liar says mix A lost everything and the cheater C lost nothing.
	liar := auditor(prov3, [2]int{100, 0}, [2]int{100, 96}, [2]int{100, 100})
	tab := report(t, honest1, honest2, liar)
	if a := rowOf(t, tab, mixA); a.Amount == 0 || a.Score != 0.93 {
		t.Errorf("with one liar of three, honest mix A scores %v and earns %d; want the lower honest score 0.93 and pay", a.Score, a.Amount)
	}
	if c := rowOf(t, tab, mixC); c.Amount != 0 || c.Score != 0.7 {
		t.Errorf("with one liar of three, the cheater scores %v and earns %d; want 0.70 and nothing", c.Score, c.Amount)
	}
	// With two auditors the median is the mean of both: one liar halves
	// an honest mix's score and zeroes it (docs/ACCOUNTING.md says so).
	tab = report(t, honest1, liar)
	if a := rowOf(t, tab, mixA); a.Amount != 0 || a.Score != 0.485 {
		t.Errorf("with one liar of two, mix A scores %v and earns %d; want 0.485 and nothing", a.Score, a.Amount)
	}
}

func TestAMixCannotVoteAsAnAuditorAndANodeScrapedTwiceCountsOnce(t *testing.T) {
	p1 := auditor(prov1, [2]int{100, 97}, [2]int{100, 95}, [2]int{100, 60})
	fakeAuditor := node(mixC, "mix", audit(7, mixC, 100, 100), audit(7, mixA, 100, 0))
	tab := report(t, p1, p1, fakeAuditor)
	if c := rowOf(t, tab, mixC); c.Auditors != 1 || c.Score != 0.6 || c.ProbesSent != 100 {
		t.Errorf("the cheater: %d auditors, score %v, %d probes sent; want the one provider's 0.60 of 100", c.Auditors, c.Score, c.ProbesSent)
	}
	if tab.Budget != 1_000_000 {
		t.Errorf("budget %d: one provider scraped twice pays once", tab.Budget)
	}
}

func TestWorkDesignsSplitTheGatewaysPoolByEveryNodesWork(t *testing.T) {
	const unit = "micro-unit"
	prov := func(hex string, fwd, amount int) string {
		return node(hex, "provider", `sotto_accounting_info{params="",scheme="blindrsa-rfc9474"} 1`,
			reward(7, hex, "forwarded", unit, fwd), reward(7, hex, "delivered", unit, 0), reward(7, hex, "amount", unit, amount))
	}
	mix := func(hex string, fwd int) string {
		return node(hex, "mix", `sotto_accounting_info{params="",scheme="free"} 1`,
			reward(7, hex, "forwarded", "none", fwd), reward(7, hex, "amount", "none", 0))
	}
	r := New(nil)
	for _, m := range []string{prov(prov1, 100, 3000), prov(prov2, 100, 1000), mix(mixA, 300), mix(mixB, 300), mix(mixC, 200)} {
		if err := r.Add(strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	tab := r.Tables()[0]
	if tab.Settlement != "work" || tab.Pool != 4000 {
		t.Fatalf("settlement %q pool %d, want work over 4000", tab.Settlement, tab.Pool)
	}
	want := map[string]uint64{prov1: 400, prov2: 400, mixA: 1200, mixB: 1200, mixC: 800}
	for _, row := range tab.Rows {
		if row.Amount != want[row.Node] {
			t.Errorf("%s (%s) earns %d, want %d of the pool by its work", row.Node[:4], row.Role, row.Amount, want[row.Node])
		}
	}
	var out bytes.Buffer
	Write(&out, r.Tables())
	if !strings.Contains(out.String(), "pool 4000 split by work") {
		t.Errorf("report:\n%s", out.String())
	}
}

func TestBadMetricsAreRefused(t *testing.T) {
	r := New(nil)
	if err := r.Add(strings.NewReader("not metrics {")); err == nil {
		t.Error("garbage metrics accepted")
	}
	bad := node(prov1, "provider", `sotto_accounting_info{params="{\"budget\":\"lots\"}",scheme="shopper"} 1`)
	if err := r.Add(strings.NewReader(bad)); err == nil {
		t.Error("shopper parameters that are not its config accepted")
	}
}

// The table lists mixes, then providers, each by name, whatever the
// order of their node IDs.
func TestWriteListsMixesThenProvidersByName(t *testing.T) {
	var b strings.Builder
	Write(&b, []Table{{Epoch: 3, Rows: []Row{
		{Node: "01", Name: "provider-2", Role: "provider"},
		{Node: "02", Name: "mix-2-1", Role: "mix"},
		{Node: "03", Name: "provider-1", Role: "provider"},
		{Node: "04", Name: "mix-1-1", Role: "mix"},
	}}})
	var got []string
	for _, line := range strings.Split(b.String(), "\n")[2:] {
		if f := strings.Fields(line); len(f) > 0 {
			got = append(got, f[0])
		}
	}
	if want := []string{"mix-1-1", "mix-2-1", "provider-1", "provider-2"}; !slices.Equal(got, want) {
		t.Fatalf("rows %v, want %v\n%s", got, want, b.String())
	}
}
