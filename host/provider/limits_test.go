package provider

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/sottonet/sotto/core/clientproto"
)

// waitFor polls cond until it holds, or fails the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 10*time.Second, what, cond)
}

// waitWithin polls cond until it holds, or fails the test after d.
func waitWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The attack of the review: a SURB mailbox (a bearer capability) filled
// to the fetch budget, fetched over and over on many streams of free
// identities that never read their replies. What the provider holds for
// them stays within ReplyBytes, blocked streams are not read further, the
// overflow is answered busy, and a well-behaved client is served once the
// blocked streams are gone.
func TestUnreadRepliesStayWithinTheReplyBudget(t *testing.T) {
	const (
		fetchBytes = 32 << 10
		budget     = 16 * (fetchBytes + replyOverhead) // 16 Fetches' replies
		hostile    = 8                                 // with 4 Fetches each at most
	)
	p := startProvider(t, func(c *Config) {
		c.FetchBytes = fetchBytes
		c.ReplyBytes = budget
		c.MaxInFlight = 4 // fewer busy replies to fill the clients' windows with
		// The blocked writes must outlast the test, however slow the
		// machine (the wait below is up to two minutes); the hostile
		// streams are reset at the end.
		c.RequestTimeout = 5 * time.Minute
	})
	ref, batch := fetchFlood(t, p, [16]byte{7, 7, 7})
	// Each hostile client sends fetches for as long as the provider reads
	// them, and reads nothing.
	var (
		streams []network.Stream
		writers sync.WaitGroup
	)
	addHostile := func() {
		st := p.rawStream(t, rawClient(t, crypto.Ed25519))
		streams = append(streams, st)
		writers.Go(func() {
			for {
				if _, err := st.Write(batch); err != nil {
					return
				}
			}
		})
	}
	for range hostile {
		addHostile()
	}
	defer writers.Wait()
	defer func() {
		for _, st := range streams {
			_ = st.Reset()
		}
	}()

	fetches := func() float64 { return p.metric(t, "sotto_provider_requests_total", "op", "fetch") }
	held := func() float64 { return p.metric(t, "sotto_provider_reply_bytes") }
	full := func() bool { return held() > budget-(fetchBytes+replyOverhead) }
	// The streams' writers block once the clients' receive windows are
	// full; the provider then stops reading them, though fetches keep
	// coming, and the replies waiting behind them fill the budget.
	//
	// How much of the budget a blocked stream holds depends on the order
	// the streams filled in: one whose window filled with busy replies
	// (while others held the budget) holds none. So when every stream is
	// blocked and the budget is not yet full, another hostile client
	// comes: while the budget has room it is answered in full, and blocks
	// holding up to MaxInFlight replies.
	last := -1.0
	// Tens of thousands of busy replies fill the windows first: give a
	// loaded machine (or the race detector) time. "Stopped reading" is
	// not inferred from one quiet 200 ms (a descheduled provider is quiet
	// too): the count of fetches read must stay unchanged over five
	// samples spanning at least 2 s.
	var quietSince time.Time
	waitWithin(t, 2*time.Minute, "the provider stops reading the hostile streams with the budget full", func() bool {
		if n := fetches(); n != last {
			last, quietSince = n, time.Time{}
			time.Sleep(200 * time.Millisecond)
			return false
		}
		if quietSince.IsZero() {
			quietSince = time.Now()
		}
		if time.Since(quietSince) < 2*time.Second {
			time.Sleep(500 * time.Millisecond)
			return false
		}
		if full() {
			return true
		}
		if len(streams) >= 4*hostile {
			t.Fatalf("%d hostile streams blocked with %v reply bytes held; want the budget (%d) full", len(streams), held(), budget)
		}
		addHostile()
		last, quietSince = -1, time.Time{}
		return false
	})
	if h := held(); h <= budget-(fetchBytes+replyOverhead) {
		t.Fatalf("%v reply bytes held, want the budget (%d) full", h, budget)
	}
	if busy := p.metric(t, "sotto_provider_requests_total", "op", "fetch", "result", "busy"); busy == 0 {
		t.Fatal("no fetch was answered busy")
	}

	good := p.dial(t)
	if _, err := good.Fetch(ctxT(t), ref, 0, 0); !errors.Is(err, clientproto.ErrBusy) {
		t.Fatalf("a fetch while the budget is full: err = %v, want ErrBusy", err)
	}

	for _, st := range streams {
		_ = st.Reset()
	}
	waitFor(t, "the hostile streams' replies are given back", func() bool { return held() == 0 })
	got, err := good.Fetch(ctxT(t), ref, 0, 0)
	if err != nil || len(got) != 7 {
		t.Fatalf("a fetch after the flood = %d messages, %v; want 7", len(got), err)
	}
	p.svc.replies.mu.Lock()
	peak := p.svc.replies.peak
	p.svc.replies.mu.Unlock()
	if peak > budget {
		t.Fatalf("replies held %d bytes at most, over the budget of %d", peak, budget)
	}
	t.Logf("served %v hostile fetches before all %d streams blocked; at most %d reply bytes held (budget %d)", last, len(streams), peak, budget)
}

// fetchFlood fills a SURB mailbox with eight 4 KiB messages and returns
// it with a hundred Fetches of it, framed, for a client to send at once.
func fetchFlood(t *testing.T, p *testProvider, capability [16]byte) (clientproto.MailboxRef, []byte) {
	t.Helper()
	ref := clientproto.MailboxRef{SURB: true, Capability: capability}
	msg := (&clientproto.StoredMessage{Payload: make([]byte, 4<<10)}).AppendTo(nil)
	var msgs [][]byte
	for range 8 {
		msgs = append(msgs, msg)
	}
	p.deliver(t, clientproto.SURBMailbox(capability), msgs...)
	var batch []byte
	for i := range 100 {
		var err error
		req := clientproto.Request{ID: uint32(i), Op: clientproto.OpFetch, Mailbox: ref}
		if batch, err = req.AppendFrame(batch); err != nil {
			t.Fatal(err)
		}
	}
	return ref, batch
}

func TestRequestsBeyondTheServiceBoundAreBusy(t *testing.T) {
	block := make(chan struct{})
	p := startProvider(t, func(c *Config) { c.MaxRequests = 2 })
	p.backend.block = block
	slow, other := p.dial(t), p.dial(t)
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := slow.Document(ctxT(t), 7)
			done <- err
		}()
	}
	waitFor(t, "two documents are being served", func() bool { return p.backend.waits.Load() == 2 })
	if err := other.Send(ctxT(t), p.backend.id, packet(1)); !errors.Is(err, clientproto.ErrBusy) {
		t.Fatalf("a request beyond MaxRequests: err = %v, want ErrBusy", err)
	}
	close(block)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Send(ctxT(t), p.backend.id, packet(1)); err != nil {
		t.Fatalf("once the slow requests are done: %v", err)
	}
}

// document asks for the test backend's document on st and fails the
// test unless it is served.
func document(t *testing.T, st network.Stream) {
	t.Helper()
	if resp := roundTrip(t, st, &clientproto.Request{ID: 1, Op: clientproto.OpDocument, Epoch: 7}); resp.Code != clientproto.CodeOK {
		t.Fatalf("document: %v", resp.Err())
	}
}

// isReset waits (bounded) for st to be reset by the provider.
func isReset(t *testing.T, st network.Stream) bool {
	t.Helper()
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := st.Read(make([]byte, 1))
	return errors.Is(err, network.ErrReset)
}

func TestAFullAddressEvictsAnIdleStreamOfItsHeaviestClient(t *testing.T) {
	p := startProvider(t, func(c *Config) {
		c.MaxStreamsPerIP = 3
		c.MaxStreamsPerClient = 2
		c.IdleTimeout, c.FirstRequestTimeout = time.Minute, time.Minute
	})
	// The light client's stream is the oldest, the heavy client holds two.
	light := p.rawStream(t, rawClient(t, crypto.Ed25519))
	document(t, light)
	heavy := rawClient(t, crypto.Ed25519)
	h1, h2 := p.rawStream(t, heavy), p.rawStream(t, heavy)
	document(t, h1)
	document(t, h2)

	newcomer := p.rawStream(t, rawClient(t, crypto.Ed25519))
	document(t, newcomer)
	if !isReset(t, h1) {
		t.Fatal("the heavy client's stream idle longest was not evicted")
	}
	document(t, light)
	document(t, h2)
	if got := p.metric(t, "sotto_provider_client_streams_evicted_total", "reason", "max_streams_per_ip"); got != 1 {
		t.Fatalf("streams evicted for their address = %v, want 1", got)
	}
	if got := p.metric(t, "sotto_provider_client_streams"); got != 3 {
		t.Fatalf("%v streams open, want the address's bound (3)", got)
	}
}

func TestAFullTableWithNoIdleStreamRefusesNewcomers(t *testing.T) {
	block := make(chan struct{})
	p := startProvider(t, func(c *Config) { c.MaxStreamsPerIP = 2 })
	p.backend.block = block
	var busy []network.Stream
	for range 2 {
		st := p.rawStream(t, rawClient(t, crypto.Ed25519))
		frame, err := (&clientproto.Request{ID: 1, Op: clientproto.OpDocument, Epoch: 7}).AppendFrame(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write(frame); err != nil {
			t.Fatal(err)
		}
		busy = append(busy, st)
	}
	waitFor(t, "both streams are being served", func() bool { return p.backend.waits.Load() == 2 })
	if st := p.rawStream(t, rawClient(t, crypto.Ed25519)); !isReset(t, st) {
		t.Fatal("a newcomer to a full address whose streams are all busy was not refused")
	}
	if got := p.metric(t, "sotto_provider_client_streams_refused_total", "reason", "max_streams_per_ip"); got != 1 {
		t.Fatalf("streams refused for their address = %v, want 1", got)
	}
	close(block)
	for _, st := range busy {
		_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := clientproto.ReadFrame(st, nil, clientproto.MaxResponseLength); err != nil {
			t.Fatalf("a busy stream's reply: %v", err)
		}
	}
}

func TestStreamsThatNeverAskAreCutSooner(t *testing.T) {
	p := startProvider(t, func(c *Config) {
		c.FirstRequestTimeout = 300 * time.Millisecond
		c.IdleTimeout = 10 * time.Second
	})
	t.Run("a stream without a request is cut after the first-request timeout", func(t *testing.T) {
		st := p.rawStream(t, rawClient(t, crypto.Ed25519))
		_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		if _, err := st.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
			t.Fatalf("read err = %v, want a reset", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("cut after %v", d)
		}
	})
	t.Run("a stream that asked is kept for the idle timeout", func(t *testing.T) {
		st := p.rawStream(t, rawClient(t, crypto.Ed25519))
		if resp := roundTrip(t, st, &clientproto.Request{ID: 1, Op: clientproto.OpDocument, Epoch: 7}); resp.Code != clientproto.CodeOK {
			t.Fatal(resp.Err())
		}
		_ = st.SetReadDeadline(time.Now().Add(time.Second))
		var timeout interface{ Timeout() bool }
		if _, err := st.Read(make([]byte, 1)); !errors.As(err, &timeout) || !timeout.Timeout() {
			t.Fatalf("read err = %v, want our own deadline (the stream kept)", err)
		}
		if resp := roundTrip(t, st, &clientproto.Request{ID: 2, Op: clientproto.OpDocument, Epoch: 7}); resp.Code != clientproto.CodeOK {
			t.Fatal(resp.Err())
		}
	})
}
