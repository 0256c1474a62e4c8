package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/sottonet/sotto/client/p2p"
	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/localnet"
)

// 100 clients hang up in the middle of their Fetch and Ack requests (each
// gives up a few milliseconds into the call, then drops its connection),
// as every `sotto recv --count 1` exit did. A hang-up used to read as a
// storage plugin failure: the provider's storage process was killed and
// restarted and packets in flight were dropped as `replay_store`. Now the
// storage plugin neither crashes nor restarts, no packet is dropped for
// want of storage, and the provider serves on.
func TestClientsHangingUpLeaveTheProvidersStorageAlone(t *testing.T) {
	ln := startNet(t, localnet.Spec{Layers: 2, MixesPerLayer: 1, Providers: 1,
		Params: interfaces.NetworkParams{Mu: 5, LambdaP: 1, LambdaL: 1, LambdaD: 1, LambdaM: 1}, EpochPeriod: 2 * time.Minute})
	prov := ln.Providers()[0]
	ai, err := p2p.ParseProviderAddr(prov.Addr)
	if err != nil {
		t.Fatal(err)
	}
	const clients, wave = 100, 20
	for start := 0; start < clients; start += wave {
		var wg sync.WaitGroup
		for i := range wave {
			wg.Go(func() {
				_, key, _ := ed25519.GenerateKey(rand.Reader)
				dctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				defer cancel()
				conn, err := p2p.Dial(dctx, p2p.Options{Identity: key, Provider: ai})
				if err != nil {
					t.Errorf("client %d: dial: %v", start+i, err)
					return
				}
				var mb clientproto.MailboxRef // the client's own mailbox
				var calls sync.WaitGroup
				for j := range 4 {
					calls.Go(func() {
						ctx, cancel := context.WithTimeout(t.Context(), time.Duration(1+(i+j)%5)*time.Millisecond)
						defer cancel()
						if j%2 == 0 {
							_, _ = conn.Fetch(ctx, mb, 0, 100)
						} else {
							_ = conn.Ack(ctx, mb, []uint64{uint64(j), uint64(j + 1)})
						}
					})
				}
				time.Sleep(time.Duration(i%3) * time.Millisecond) // hang up while calls are in flight
				_ = conn.Close()
				calls.Wait()
			})
		}
		wg.Wait()
	}
	// The provider still serves a client, through the same storage process.
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	conn, err := p2p.Dial(t.Context(), p2p.Options{Identity: key, Provider: ai})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Fetch(t.Context(), clientproto.MailboxRef{}, 0, 10); err != nil {
		t.Fatalf("a Fetch after the hang-ups: %v", err)
	}
	for _, m := range []struct {
		name   string
		labels []string
	}{
		{"sotto_plugin_crashes_total", []string{"plugin=storage"}},
		{"sotto_plugin_restarts_total", []string{"plugin=storage"}},
		{"sotto_packets_dropped_total", []string{"reason=replay_store"}},
	} {
		if v := metric(t, prov, m.name, m.labels...); v != 0 {
			t.Errorf("%s%v = %v after 100 clients hung up, want 0", m.name, m.labels, v)
		}
	}
}
