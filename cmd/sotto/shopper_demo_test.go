package main

import (
	"testing"
	"time"

	"github.com/sottonet/sotto/internal/demo"
)

// With the secret shopper the providers audit, and a mix dropping 30 % of
// what it should forward (while counting it all as work) scores below
// every honest mix and earns nothing in the first epoch reported.
func TestDemoShopperCatchesTheCheatingMix(t *testing.T) {
	cfg := fastDemo()
	cfg.Accounting, cfg.CheatDrop = demo.AccountingShopper, 0.3
	cfg.Messages, cfg.Duration = 0, 45*time.Second // outlive the first epoch's report
	sum, _ := runDemo(t, cfg)
	if sum.CheatingMix != "mix-2-1" {
		t.Fatalf("cheating mix %q, want mix-2-1", sum.CheatingMix)
	}
	for _, tab := range sum.Rewards {
		var cheat *struct{ sent, back, amount uint64 }
		for _, r := range tab.Rows {
			if r.Name == sum.CheatingMix && r.ProbesSent > 0 {
				cheat = &struct{ sent, back, amount uint64 }{r.ProbesSent, r.Probed, r.Amount}
			}
		}
		if cheat == nil {
			continue
		}
		if cheat.amount != 0 {
			t.Errorf("epoch %d: the cheating mix earns %d (%d of %d probes back)", tab.Epoch, cheat.amount, cheat.back, cheat.sent)
		}
		for _, r := range tab.Rows {
			if r.Role != "mix" || r.Name == sum.CheatingMix || r.ProbesSent == 0 {
				continue
			}
			if float64(r.Probed)/float64(r.ProbesSent) <= float64(cheat.back)/float64(cheat.sent) || r.Amount == 0 {
				t.Errorf("epoch %d: honest %s has %d of %d probes back and earns %d; the cheater %d of %d", tab.Epoch, r.Name, r.Probed, r.ProbesSent, r.Amount, cheat.back, cheat.sent)
			}
		}
		t.Logf("epoch %d: the cheating mix had %d of %d probes back and earns %d", tab.Epoch, cheat.back, cheat.sent, cheat.amount)
		return
	}
	t.Fatal("no epoch with probes through the cheating mix was reported")
}
