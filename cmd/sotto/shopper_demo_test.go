package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sottonet/sotto/internal/demo"
	"github.com/sottonet/sotto/internal/rewards"
	shopper "github.com/sottonet/sotto/plugins/pay-shopper"
)

// With the secret shopper three providers audit, and the rewards report
// combines their measurements live: each mix's score is the median over
// the three auditors; a mix dropping 30 % of what it should forward
// (while counting it all as work) scores below every honest mix and earns
// nothing in the first epoch reported; and one auditor lying about an
// honest mix, added to the two others' live measurements, cannot zero it.
func TestDemoShopperCatchesTheCheatingMix(t *testing.T) {
	t.Parallel() // a network of its own (localnet_test.go, "Parallel tests")
	cfg := fastDemo()
	cfg.Accounting, cfg.CheatDrop, cfg.Providers = demo.AccountingShopper, 0.3, 3
	cfg.Messages, cfg.Duration = 0, 45*time.Second // outlive the first epoch's report
	sum, _ := runDemo(t, cfg)
	if sum.CheatingMix != "mix-2-1" {
		t.Fatalf("cheating mix %q, want mix-2-1", sum.CheatingMix)
	}
	for _, tab := range sum.Rewards {
		// The first epoch every provider audited every mix (an auditor
		// starts once its view of the network is stable, so the partial
		// first epoch may lack one).
		var cheat *rewards.Row
		all := true
		for i, r := range tab.Rows {
			if r.Role == "mix" && len(r.Audits) != 3 {
				all = false
			}
			if r.Name == sum.CheatingMix {
				cheat = &tab.Rows[i]
			}
		}
		if !all || cheat == nil {
			continue
		}
		if tab.Settlement != shopper.Scheme {
			t.Fatalf("epoch %d settled by %q", tab.Epoch, tab.Settlement)
		}
		if cheat.Amount != 0 {
			t.Errorf("epoch %d: the cheating mix earns %d (score %.2f)", tab.Epoch, cheat.Amount, cheat.Score)
		}
		var honest []rewards.Row
		for _, r := range tab.Rows {
			if r.Role != "mix" {
				continue
			}
			checkMedian(t, tab.Epoch, r)
			if r.Name == sum.CheatingMix {
				continue
			}
			honest = append(honest, r)
			// Every honest mix scores above the cheater. One at or above the
			// threshold earns; one below it earns nothing, which about 100
			// probes an epoch allow an honest mix on a loaded machine (0.89
			// once in CI: late probes count as lost).
			if r.Score <= cheat.Score || (r.Score >= tab.Threshold) != (r.Amount > 0) {
				t.Errorf("epoch %d: honest %s scores %.2f and earns %d; the cheater %.2f", tab.Epoch, r.Name, r.Score, r.Amount, cheat.Score)
			}
		}
		if len(honest) != 3 {
			t.Fatalf("epoch %d: %d honest mixes, want 3", tab.Epoch, len(honest))
		}
		// The liar's victim is the best-scored honest mix, which earns.
		best := slices.MaxFunc(honest, func(a, b rewards.Row) int { return cmp.Compare(a.Score, b.Score) })
		// Late probes count as lost, so on a loaded machine every honest
		// mix may fall just under the threshold (0.89 once in CI); the
		// ranking above still holds, and the liar must still not move the
		// best one's score or pay.
		if best.Amount == 0 && best.Score >= tab.Threshold {
			t.Errorf("epoch %d: no honest mix earns (best %s scores %.2f)", tab.Epoch, best.Name, best.Score)
		} else if best.Amount == 0 {
			t.Logf("epoch %d: no honest mix reached the threshold %.2f on this machine (best %s: %.2f)", tab.Epoch, tab.Threshold, best.Name, best.Score)
		}
		checkOneLiar(t, tab, best)
		t.Logf("epoch %d: the cheating mix had %d of %d probes back (score %.2f by %d auditors) and earns %d",
			tab.Epoch, cheat.Probed, cheat.ProbesSent, cheat.Score, cheat.Auditors, cheat.Amount)
		return
	}
	t.Fatal("no epoch in which all three providers audited every mix was reported")
}

// checkMedian: a mix's score is the median of its live auditors' ratios.
func checkMedian(t *testing.T, e uint64, r rewards.Row) {
	t.Helper()
	var v []float64
	for _, a := range r.Audits {
		if a.Sent >= shopper.DefaultConfig.MinProbes {
			v = append(v, min(1, float64(a.Back)/float64(a.Sent)))
		}
	}
	if len(r.Audits) != 3 || r.Auditors != len(v) || r.Score != shopper.Median(v) {
		t.Errorf("epoch %d: %s has %d auditors' measurements %+v, %d counted, score %v; want three and the median %v",
			e, r.Name, len(r.Audits), r.Audits, r.Auditors, r.Score, shopper.Median(v))
	}
}

// checkOneLiar settles tab's epoch again from the live measurements, with
// one auditor (the one that measured the honest mix lowest) saying every
// probe through that mix was lost: the median over the two honest
// auditors and the liar is the lower honest one, which here is the mix's
// score without the lie, so the liar cannot zero it.
func checkOneLiar(t *testing.T, tab rewards.Table, victim rewards.Row) {
	t.Helper()
	if len(victim.Audits) != 3 {
		t.Fatalf("%s has %d auditors' measurements, want 3", victim.Name, len(victim.Audits))
	}
	per := map[string][]string{} // auditor → its sotto_audit_probes lines
	liar, low := "", 2.0
	for _, a := range victim.Audits {
		if r := float64(a.Back) / float64(max(a.Sent, 1)); r < low {
			liar, low = a.Auditor, r
		}
	}
	for _, r := range tab.Rows {
		for _, a := range r.Audits {
			back := a.Back
			if a.Auditor == liar && r.Node == victim.Node {
				back = 0
			}
			per[a.Auditor] = append(per[a.Auditor],
				fmt.Sprintf("sotto_audit_probes{epoch=\"%d\",field=\"probes_sent\",node=%q} %d", tab.Epoch, r.Node, a.Sent),
				fmt.Sprintf("sotto_audit_probes{epoch=\"%d\",field=\"probed\",node=%q} %d", tab.Epoch, r.Node, back))
		}
	}
	rep := rewards.New(nil)
	for auditor, lines := range per {
		m := fmt.Sprintf("sotto_node_identity{node=%q,role=\"provider\"} 1\n", auditor) +
			fmt.Sprintf(`sotto_accounting_info{params="{\"budget\":1000000,\"threshold\":%v,\"min_probes\":10}",scheme="shopper"} 1`, tab.Threshold) + "\n" +
			strings.Join(lines, "\n") + "\n"
		if err := rep.Add(strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rep.Tables()[0].Rows {
		if r.Node == victim.Node && ((r.Amount == 0) != (victim.Amount == 0) || r.Score != victim.Score) {
			t.Errorf("one lying auditor of three moves honest %s from %.3f to %.3f and pays it %d (live measurements %+v)",
				victim.Name, victim.Score, r.Score, r.Amount, victim.Audits)
		}
	}
}
