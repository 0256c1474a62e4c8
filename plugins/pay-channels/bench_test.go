package channels

import (
	"context"
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
)

// BenchmarkRedeemInProcess is Redeem's own work (parse, the channel read
// from the ledger, Ed25519 verify, the newest voucher read and replaced
// with the epoch's amount by one compare-and-swap) on an in-memory KV: the
// floor under host/plugin's BenchmarkPaymentRatios, which adds the
// plugin's gRPC hops and a durable store. Vouchers are signed with the
// timer stopped.
func BenchmarkRedeemInProcess(b *testing.B) {
	kv := memkv.New()
	cfg, _ := ParseConfig([]byte(`{"max_deposit": 1000000000000000, "max_channel_epochs": 10}`))
	p, _, err := OpenWithKVLedger(context.Background(), cfg, kv)
	if err != nil {
		b.Fatal(err)
	}
	c := newPayer(b)
	if err := c.open(b, p, 1, cfg.MaxDeposit); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		cred := c.next(1000).Marshal()
		b.StartTimer()
		if _, err := p.Redeem(context.Background(), &interfaces.RedeemRequest{Epoch: 1, Credential: cred, Packets: 100}); err != nil {
			b.Fatal(err)
		}
	}
}
