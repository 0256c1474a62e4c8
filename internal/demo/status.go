package demo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sottonet/sotto/internal/localnet"
)

// showStatus redraws the status line until the returned func is called.
func (r *run) showStatus(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	every := 5 * time.Second
	if r.cfg.Live {
		every = 250 * time.Millisecond
	}
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.pr.update(r.statusLine())
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (r *run) statusLine() string {
	sent, delivered, _ := r.tr.counts()
	a, b := r.alice.stats(), r.bob.stats()
	s := addStats(a, b)
	total := s.PacketsPayload + s.PacketsLoop + s.PacketsDrop
	cover := 0.0
	if total > 0 {
		cover = 100 * float64(s.PacketsLoop+s.PacketsDrop+s.PayloadDecoys) / float64(total)
	}
	bob := "online"
	if r.bob.client() == nil {
		bob = "OFFLINE"
	}
	return fmt.Sprintf("messages %d sent, %d delivered | client packets %d (%.0f%% cover) | loops %d back, %d lost | retransmissions %d | bob %s",
		sent, delivered, total, cover, s.LoopsReturned, s.LoopsLost, s.Retransmissions, bob)
}

// summary gathers the clients' counters and scrapes the nodes.
func (r *run) summary(ctx context.Context) *Summary {
	s := &Summary{Config: r.cfg, Dropped: map[string]float64{}}
	// CPU first: the scrapes below make the accounting plugins answer
	// Earnings, which is the report's cost, not the design's.
	r.costSummary(s)
	s.Messages, s.Unexpected = r.tr.snapshot()
	st := addStats(r.alice.stats(), r.bob.stats())
	s.PacketsPayload, s.PacketsLoop, s.PacketsDrop = st.PacketsPayload, st.PacketsLoop, st.PacketsDrop
	s.PayloadDecoys, s.Retransmissions = st.PayloadDecoys, st.Retransmissions
	s.ClientLoopsSent, s.ClientLoopsReturned, s.ClientLoopsLost, s.ClientLoopsLate = st.LoopsSent, st.LoopsReturned, st.LoopsLost, st.LoopsLate
	r.paySummary(s)
	s.PushFrames, s.PushSlots, s.PushMessages = st.PushFrames, st.PushSlots, st.PushMessages
	names := map[[32]byte]string{}
	for _, n := range r.ln.Nodes {
		names[n.ID] = n.Name
	}
	var suspects []string
	for _, p := range []*peer{r.alice, r.bob} {
		ps := p.stats()
		for _, id := range ps.Suspects {
			suspects = append(suspects, names[id])
		}
		if r.killed != nil && (ps.LostLoopMixes[r.killed.ID] > 0 || slices.Contains(ps.Suspects, r.killed.ID)) {
			s.Noticed = true
		}
	}
	slices.Sort(suspects)
	s.Suspects = slices.Compact(suspects)
	if r.killed != nil {
		s.Killed = r.killed.Name
	}
	for _, n := range r.ln.Nodes {
		// Each node its own timeout: a provider answering slowly (its
		// metrics ask the accounting plugin) must not eat the others' time.
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		mf, err := n.Scrape(sctx)
		cancel()
		if err != nil {
			s.NotScraped = append(s.NotScraped, n.Name)
			continue
		}
		if n.Role == "provider" {
			s.GatewayPackets += uint64(localnet.Value(mf, "sotto_packets_in_total", "source=client"))
		}
		s.MixLoopsSent += localnet.Value(mf, "sotto_mix_loops_sent_total")
		s.MixLoopsReturned += localnet.Value(mf, "sotto_mix_loops_returned_total")
		s.MixLoopsLost += localnet.Value(mf, "sotto_mix_loops_lost_total")
		if f := mf["sotto_packets_dropped_total"]; f != nil {
			for _, m := range f.Metric {
				for _, lp := range m.Label {
					if lp.GetName() == "reason" && m.Counter != nil {
						s.Dropped[lp.GetValue()] += m.Counter.GetValue()
					}
				}
			}
		}
	}
	return s
}

// costSummary fills s's cost fields: the wallets' meters, this process's
// CPU since the clients started, and the providers' CPU from /proc.
func (r *run) costSummary(s *Summary) {
	for _, p := range []*peer{r.alice, r.bob} {
		if p.wallet != nil {
			m := p.wallet.measured()
			s.PayCalls, s.PayBytesSent, s.PayBytesRecv = s.PayCalls+m.Pays, s.PayBytesSent+m.BytesSent, s.PayBytesRecv+m.BytesRecv
			s.PayCPU += m.CPU
		}
	}
	now, ok := processCPU()
	s.ClientProcessCPU = now - r.cpu0
	s.CPUMeasured = ok
	node, acc, err := r.gatewayCPU()
	if err != nil {
		r.log.Warn("cost: reading the providers' CPU", "err", err)
		s.CPUMeasured = false
	}
	s.GatewayNodeCPU, s.GatewayAccountingCPU = node-r.gwNode0, acc-r.gwAcc0
	s.MixLedgerCPU = r.mixLedgerCPU() - r.mixLedger0
}

// gatewayCPU is the CPU the providers' node processes and their accounting
// plugin processes have used so far.
func (r *run) gatewayCPU() (node, acc time.Duration, err error) {
	name, _ := providerAccounting(r.cfg.Accounting)["builtin"].(string)
	for _, n := range r.ln.Providers() {
		c, plugins, e := n.CPU()
		if e != nil {
			err = fmt.Errorf("%s: %w", n.Name, e)
			continue
		}
		node += c
		if name != "" {
			acc += plugins[name]
		}
	}
	return node, acc, err
}

// mixLedgerCPU is the CPU the mixes' work-ledger plugins have used so far:
// a plugin process that records one report per epoch, for scale.
func (r *run) mixLedgerCPU() time.Duration {
	var d time.Duration
	name, _ := mixAccounting()["builtin"].(string)
	for _, n := range r.ln.Mixes() {
		if _, plugins, err := n.CPU(); err == nil {
			d += plugins[name]
		}
	}
	return d
}
