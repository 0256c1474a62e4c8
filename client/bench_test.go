package client

import (
	"testing"
	"time"

	"github.com/sottonet/sotto/core/cover"
	"github.com/sottonet/sotto/core/pkidoc"
)

// BenchmarkSendSlot measures the work of one send slot: choosing paths and
// delays and building the packet (HPKE seal, ACK SURB and Sphinx packet for
// a fragment or a loop; a Sphinx packet for a drop decoy), on the default
// geometry (2048-byte payload, three layers).
func BenchmarkSendSlot(b *testing.B) {
	p := testParams()
	p.PayloadLen = 2048
	for _, kind := range []cover.Kind{cover.Payload, cover.Loop, cover.Drop} {
		b.Run(kind.String(), func(b *testing.B) {
			benchSlot(b, p, kind)
		})
	}
}

func benchSlot(b *testing.B, p pkidoc.NetworkParams, kind cover.Kind) {
	net := newSimNet(b, 2, p)
	c, _ := net.newClient(b, 0, 1, func(cfg *Config) { cfg.MaxQueued = 1 << 20 })
	if _, err := c.fetchDocument(b.Context(), net.clock.Now()); err != nil {
		b.Fatal(err)
	}
	to, _ := c.NewContact(b.Context(), ContactOptions{})
	b.ReportAllocs()
	for b.Loop() {
		if kind == cover.Payload {
			b.StopTimer()
			if _, err := c.Send(b.Context(), to, []byte("benchmark")); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		c.mu.Lock()
		sp, _, err := c.buildSlot(kind, time.Now())
		// Keep the client's tables from growing across iterations.
		clear(c.surbs)
		clear(c.loops)
		clear(c.out)
		c.mu.Unlock()
		if err != nil || len(sp.pkt) != net.g.PacketLength {
			b.Fatalf("slot: %v", err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}
