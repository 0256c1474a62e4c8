package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/client/p2p"
	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/linkrec"
	"github.com/sottonet/sotto/internal/localnet"
)

// What a downstream test run records: RunFor of a client's link, cut into
// bins of Bin, after a warm-up.
const (
	linkWarmup = 2 * time.Second
	linkRunFor = 8 * time.Second
	linkBin    = 200 * time.Millisecond
)

// linkRun is one recorded run of a client.
type linkRun struct {
	frames   []linkrec.Frame
	start    time.Time
	received int
	stats    client.Stats
}

// pollingLink is a link without the pushed downstream: only the methods
// of client.Provider, so the client polls with Fetch and Ack.
type pollingLink struct{ client.Provider }

// recordedClient opens a client of the provider at addr whose link is
// recorded by rec; with poll set, it polls its mailboxes.
func recordedClient(t *testing.T, addr string, rec *linkrec.Recorder, poll bool) *client.Client {
	t.Helper()
	ai, err := p2p.ParseProviderAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := p2p.ProviderID(ai.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	cfg := client.Config{Identity: key, ProviderID: pid, ProviderAddr: addr, Logger: slog.New(slog.DiscardHandler),
		Dial: func(ctx context.Context, id ed25519.PrivateKey) (client.Provider, error) {
			o := p2p.Options{Identity: id, Provider: ai, Logger: slog.New(slog.DiscardHandler)}
			if rec != nil {
				o.WrapStream = rec.WrapStream
			}
			conn, err := p2p.Dial(ctx, o)
			if err != nil || !poll {
				return conn, err
			}
			return pollingLink{conn}, nil
		}}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runClient runs c until the returned stop is called (or ctx ends),
// handing out what it receives.
func runClient(t *testing.T, ctx context.Context, c *client.Client, received *atomic.Int64) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	go func() {
		_ = c.Handle(ctx, func(client.Message) error {
			if received != nil {
				received.Add(1)
			}
			return nil
		})
	}()
	select {
	case <-c.Ready():
	case <-time.After(60 * time.Second):
		t.Fatal("client not connected within a minute")
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		_ = c.Close()
	}
}

// recordLink runs a fresh client (alice) with surbs anonymous contacts
// for the warm-up and RunFor, recording its link. With busy, a second
// client (bob) sends her a steady stream of messages, through her
// forward contact and each anonymous one, and she sends him messages
// whose acknowledgements come back to her.
func recordLink(t *testing.T, addr string, surbs int, busy, poll bool) linkRun {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := linkrec.New()
	alice := recordedClient(t, addr, rec, poll)
	var received atomic.Int64
	stopAlice := runClient(t, ctx, alice, &received)
	defer stopAlice()
	fwd, err := alice.NewContact(ctx, client.ContactOptions{For: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	contacts := []*client.Contact{fwd}
	for i := range surbs {
		c, err := alice.NewContact(ctx, client.ContactOptions{Anonymous: true, For: fmt.Sprintf("bob %d", i), SURBs: 20})
		if err != nil {
			t.Fatal(err)
		}
		contacts = append(contacts, c)
	}
	for !poll && alice.Stats().PushFrames == 0 {
		if !sleepCtx(ctx, 50*time.Millisecond) {
			t.Fatal(ctx.Err())
		}
	}
	if busy {
		bob := recordedClient(t, addr, nil, false)
		stopBob := runClient(t, ctx, bob, nil)
		defer stopBob()
		toBob, err := bob.NewContact(ctx, client.ContactOptions{For: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		// About λP/2 messages a second each way: steady, and within what
		// the payload slots carry.
		go func() {
			for i := 0; ctx.Err() == nil; i++ {
				_, _ = bob.Send(ctx, contacts[i%len(contacts)], fmt.Appendf(nil, "to alice %d", i))
				_, _ = alice.Send(ctx, toBob, fmt.Appendf(nil, "to bob %d", i))
				sleepCtx(ctx, 500*time.Millisecond)
			}
		}()
	}
	start := time.Now().Add(linkWarmup)
	sleepCtx(ctx, linkWarmup+linkRunFor+linkBin)
	return linkRun{frames: rec.Frames(), start: start, received: int(received.Load()), stats: alice.Stats()}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// notDocument leaves out documents, which every client fetches once per
// epoch whatever it receives.
func notDocument(f linkrec.Frame) bool { return f.Op != clientproto.OpDocument }

// TestTheDownstreamHidesWhatArrives runs a client twice on a loopback
// network of node processes, once receiving nothing but its own loops,
// once receiving a steady stream of messages and acknowledgements, and
// compares what an observer of its link sees: every frame size of one
// run is a size of the other (documents aside), the downstream's frames
// and pulses have one size, and the bytes per interval in each direction
// are indistinguishable to a two-sample Kolmogorov–Smirnov test at 1%
// over the six comparisons (Bonferroni: 1/6 % each, so that the test's
// own false alarms stay at 1% a run); the same with one and with five
// SURB mailboxes.
func TestTheDownstreamHidesWhatArrives(t *testing.T) {
	ln := startNet(t, localnet.Spec{Layers: 2, MixesPerLayer: 1, Providers: 1,
		Params: interfaces.NetworkParams{Mu: 20, LambdaP: 4, LambdaL: 2, LambdaD: 1, LambdaM: 1}, EpochPeriod: 5 * time.Minute})
	addr := ln.Providers()[0].Addr
	for _, surbs := range []int{0, 1, 5} {
		t.Run(fmt.Sprintf("%d SURB mailboxes", surbs), func(t *testing.T) {
			quiet := recordLink(t, addr, surbs, false, false)
			busy := recordLink(t, addr, surbs, true, false)
			if busy.received < 5 || busy.stats.PushMessages <= quiet.stats.PushMessages {
				t.Fatalf("the busy run received %d messages (%d pushed, quiet run %d): nothing to hide",
					busy.received, busy.stats.PushMessages, quiet.stats.PushMessages)
			}
			t.Logf("quiet: %d pushed of %d slots; busy: %d messages, %d pushed of %d slots",
				quiet.stats.PushMessages, quiet.stats.PushSlots, busy.received, busy.stats.PushMessages, busy.stats.PushSlots)
			for _, dir := range []linkrec.Dir{linkrec.Up, linkrec.Down} {
				of := func(f linkrec.Frame) bool { return f.Dir == dir && notDocument(f) }
				qs, bs := linkrec.Sizes(quiet.frames, of), linkrec.Sizes(busy.frames, of)
				if !slices.Equal(qs, bs) {
					t.Errorf("%v frame sizes differ: quiet %v, busy %v", dir, qs, bs)
				}
				for _, op := range []clientproto.Op{clientproto.OpSubscribe, clientproto.OpPulse} {
					is := func(f linkrec.Frame) bool { return f.Dir == dir && f.Op == op }
					if s := linkrec.Sizes(append(slices.Clone(quiet.frames), busy.frames...), is); len(s) > 1 {
						t.Errorf("%v %v frames of sizes %v", dir, op, s)
					}
				}
				n := int(linkRunFor / linkBin)
				qb := linkrec.PerInterval(quiet.frames, quiet.start, linkBin, n, of)
				bb := linkrec.PerInterval(busy.frames, busy.start, linkBin, n, of)
				d, p := linkrec.KolmogorovSmirnov(qb, bb)
				t.Logf("%v: bytes per %v: quiet mean %.0f, busy mean %.0f; KS d %.3f p %.3f", dir, linkBin, mean(qb), mean(bb), d, p)
				if p < 0.01/6 {
					t.Errorf("%v bytes per interval told apart: KS d %.3f, p %.4f\nquiet %v\nbusy  %v", dir, d, p, qb, bb)
				}
			}
		})
	}
	// The same comparison tells a polling client's link apart: the test
	// can fail.
	t.Run("a polling client is told apart", func(t *testing.T) {
		quiet := recordLink(t, addr, 1, false, true)
		busy := recordLink(t, addr, 1, true, true)
		down := func(f linkrec.Frame) bool { return f.Dir == linkrec.Down && notDocument(f) }
		qs, bs := linkrec.Sizes(quiet.frames, down), linkrec.Sizes(busy.frames, down)
		n := int(linkRunFor / linkBin)
		_, p := linkrec.KolmogorovSmirnov(linkrec.PerInterval(quiet.frames, quiet.start, linkBin, n, down),
			linkrec.PerInterval(busy.frames, busy.start, linkBin, n, down))
		t.Logf("polling: down frame sizes quiet %v, busy %v; KS p %.4f", qs, bs, p)
		if slices.Equal(qs, bs) && p >= 0.01 {
			t.Error("a polling client's link looked the same receiving and not: the comparison cannot tell links apart")
		}
	})
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(max(len(xs), 1))
}
