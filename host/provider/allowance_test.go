package provider

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
)

// restart is a new Service on the same store (the provider's process
// started again), its allowances read back from it.
func restart(t *testing.T, p *testProvider, acc interfaces.Accounting, flush time.Duration) *Service {
	t.Helper()
	svc, err := New(Config{
		Backend: p.backend, Mailboxes: p.store, PacketLength: testPacketLength, Accounting: acc,
		Allowances: interfaces.SlotKV(p.store, "provider"), AllowanceFlush: flush,
		CurrentEpoch: func() uint64 { return 1 },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// What a client paid for survives a restart of the provider: a grant is
// durable before Redeem answers, and spending is written in batches, not
// per packet; a crash costs at most the spending since the last flush,
// in the client's favour.
func TestAllowancesSurviveARestart(t *testing.T) {
	acc := newTokenAccounting()
	p := startProvider(t, func(c *Config) {
		c.Accounting = acc
		c.Allowances = interfaces.SlotKV(c.Mailboxes.(interfaces.KV), "provider")
		c.AllowanceFlush = time.Hour // only grants and Close write
	})
	c := p.dial(t)
	ctx := ctxT(t)
	if granted, _, err := c.Redeem(ctx, 1, 100, []byte("paid:restart")); err != nil || granted != 100 {
		t.Fatalf("redeem: %d, %v", granted, err)
	}
	for i := range 10 {
		if err := c.Send(ctx, p.backend.id, packet(byte(i))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	id := c.Host().ID()
	if got := p.svc.Allowance(id); got != 90 {
		t.Fatalf("allowance %d after 10 sends of 100, want 90", got)
	}
	if w := p.metric(t, "sotto_provider_allowance_writes_total"); w != 1 {
		t.Fatalf("%v allowance writes after a grant and 10 sends, want 1 (the grant; sends are batched)", w)
	}
	// A crash now (no flush): the restarted provider finds the grant.
	if got := restart(t, p, acc, time.Hour).Allowance(id); got != 100 {
		t.Fatalf("after a crash the allowance is %d, want 100 (the last durable value; 10 packets at most lost to the provider)", got)
	}
	// A clean stop writes the spending.
	if err := p.svc.Close(); err != nil {
		t.Fatal(err)
	}
	if w := p.metric(t, "sotto_provider_allowance_writes_total"); w != 2 {
		t.Fatalf("%v allowance writes after Close, want 2", w)
	}
	s2 := restart(t, p, acc, 10*time.Millisecond)
	if got := s2.Allowance(id); got != 90 {
		t.Fatalf("after a clean restart the allowance is %d, want 90", got)
	}
	// Spending it all deletes the entry with the next flush.
	s2.mu.Lock()
	s2.allowance[id] = 0
	delete(s2.allowance, id)
	s2.dirty[id] = struct{}{}
	s2.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for restart(t, p, acc, time.Hour).Allowance(id) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a spent-out allowance was not removed by the flusher")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A provider whose store cannot be read refuses to start rather than
// forget what clients paid for.
func TestAllowancesUnreadableRefuseToStart(t *testing.T) {
	p := startProvider(t, nil)
	_, err := New(Config{
		Backend: p.backend, Mailboxes: p.store, PacketLength: testPacketLength, Accounting: newTokenAccounting(),
		Allowances: brokenKV{p.store}, CurrentEpoch: func() uint64 { return 1 },
	})
	if !errors.Is(err, interfaces.ErrUnavailable) {
		t.Fatalf("New with an allowance KV that cannot list: err = %v, want ErrUnavailable", err)
	}
}

type brokenKV struct{ interfaces.KV }

func (brokenKV) KVList(context.Context, *interfaces.KVListRequest) (*interfaces.KVListResponse, error) {
	return nil, interfaces.ErrUnavailable
}
