package blindsig

import (
	"context"
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
)

// BenchmarkRedeemInProcess is Redeem's own work (parse, RSA-PSS verify,
// one compare-and-swap of the spent mark and the epoch's count) on an
// in-memory KV: the floor under host/plugin's BenchmarkPaymentRatios,
// which adds the plugin's gRPC hops and a durable store. Tokens are
// obtained with the timer stopped.
func BenchmarkRedeemInProcess(b *testing.B) {
	kv := memkv.New()
	seed(b, kv, Namespace)
	cfg, _ := ParseConfig([]byte(`{"free_tokens_per_epoch": 1000000000, "max_batch": 32}`))
	a := openOn(b, kv, cfg)
	var pool [][]byte
	b.ReportAllocs()
	for b.Loop() {
		if len(pool) == 0 {
			b.StopTimer()
			toks, err := obtain(b, a, 1, client(1), 32, nil)
			if err != nil {
				b.Fatal(err)
			}
			pool = toks
			b.StartTimer()
		}
		if _, err := a.Redeem(context.Background(), &interfaces.RedeemRequest{Epoch: 1, Credential: pool[0], Packets: 100, Client: client(1)}); err != nil {
			b.Fatal(err)
		}
		pool = pool[1:]
	}
}

// BenchmarkIssueInProcess is one Issue of one token (a quota swap and an
// RFC 9474 BlindSign with the 2048-bit key) on an in-memory KV; blinding
// is done with the timer stopped.
func BenchmarkIssueInProcess(b *testing.B) {
	kv := memkv.New()
	seed(b, kv, Namespace)
	cfg, _ := ParseConfig([]byte(`{"free_tokens_per_epoch": 1000000000}`))
	a := openOn(b, kv, cfg)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := obtain(b, a, 1, client(1), 1, nil); err != nil {
			b.Fatal(err)
		}
	}
}
