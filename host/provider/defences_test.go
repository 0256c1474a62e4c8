package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/accountingtest"
)

// holdStreams is an attacker at one address: identities clients that each
// keep slots streams open for as long as they can, asking for a document
// on every new one and opening another as soon as one is reset. It runs
// until ctx ends; held counts its streams that were served and not (yet)
// reset.
func holdStreams(ctx context.Context, t *testing.T, p *testProvider, ip string, identities, slots int, held *atomic.Int32, wg *sync.WaitGroup) {
	frame, err := (&clientproto.Request{ID: 1, Op: clientproto.OpDocument, Epoch: 7}).AppendFrame(nil)
	if err != nil {
		t.Fatal(err)
	}
	for range identities {
		h := rawClientAt(t, crypto.Ed25519, ip)
		if err := h.Connect(ctx, p.addr(t, "tcp")); err != nil {
			t.Fatal(err)
		}
		for range slots {
			wg.Go(func() {
				for ctx.Err() == nil {
					holdOne(ctx, h, p, frame, held)
				}
			})
		}
	}
}

func holdOne(ctx context.Context, h host.Host, p *testProvider, frame []byte, held *atomic.Int32) {
	st, err := h.NewStream(ctx, p.host.ID(), clientproto.Protocol)
	if err != nil {
		pause(ctx)
		return
	}
	defer st.Reset()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	if _, err := st.Write(frame); err != nil {
		pause(ctx)
		return
	}
	if _, err := clientproto.ReadFrame(st, nil, clientproto.MaxResponseLength); err != nil {
		pause(ctx) // refused on arrival: try again
		return
	}
	held.Add(1)
	defer held.Add(-1)
	_, _ = st.Read(make([]byte, 1)) // hold it until it is reset
}

// pause keeps a refused attacker from spinning the test machine's cores.
func pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Millisecond):
	}
}

// The attack of the review: a few addresses hold every stream the
// provider allows, and reopen each one the moment it is cut. An honest
// client at another address is still served, each time, within far less
// than the idle timeout (after which the attacker's streams would have
// been cut anyway), and so is one at the attacker's own address.
func TestAnHonestClientIsServedWhileAnAttackerHoldsEveryStream(t *testing.T) {
	const idle = 2 * time.Minute
	p := startProvider(t, func(c *Config) {
		c.MaxStreams = 12
		c.MaxStreamsPerIP = 8
		c.MaxStreamsPerClient = 2
		c.IdleTimeout, c.FirstRequestTimeout = idle, idle
	})
	ctx, cancel := context.WithCancel(context.Background())
	var (
		held atomic.Int32
		wg   sync.WaitGroup
	)
	defer wg.Wait()
	defer cancel()
	holdStreams(ctx, t, p, "", 6, 2, &held, &wg)          // 127.0.0.1: 12 slots for a per-address bound of 8
	holdStreams(ctx, t, p, "127.0.0.3", 4, 2, &held, &wg) // 8 more slots for the service's 12
	waitWithin(t, time.Minute, "the attacker holds every stream", func() bool {
		return p.metric(t, "sotto_provider_client_streams") == 12 && held.Load() >= 11
	})

	for i, ip := range []string{"127.0.0.2", "127.0.0.2", "127.0.0.2", "", ""} {
		start := time.Now()
		st := p.rawStream(t, rawClientAt(t, crypto.Ed25519, ip))
		resp := roundTrip(t, st, &clientproto.Request{ID: 1, Op: clientproto.OpDocument, Epoch: 7})
		if resp.Code != clientproto.CodeOK {
			t.Fatalf("honest client %d (%q): %v", i, ip, resp.Err())
		}
		if d := time.Since(start); d > idle/4 {
			t.Fatalf("honest client %d served after %v", i, d)
		}
		_ = st.Reset()
	}
	if n := p.metric(t, "sotto_provider_client_streams"); n > 12 {
		t.Fatalf("%v streams open, over the bound of 12", n)
	}
	if p.metric(t, "sotto_provider_client_streams_evicted_total") == 0 {
		t.Fatal("no stream was evicted")
	}
	t.Logf("attacker held %d streams; %v evicted for their address, %v for the service's table",
		held.Load(), p.metric(t, "sotto_provider_client_streams_evicted_total", "reason", "max_streams_per_ip"),
		p.metric(t, "sotto_provider_client_streams_evicted_total", "reason", "max_streams"))
}

// send is one Send on a raw stream.
func sendOn(t *testing.T, st network.Stream, p *testProvider, id uint32) *clientproto.Response {
	t.Helper()
	return roundTrip(t, st, &clientproto.Request{ID: id, Op: clientproto.OpSend, FirstHop: p.backend.id, Packet: packet(byte(id))})
}

func TestSendsAreRateLimitedPerClientAndPerAddress(t *testing.T) {
	p := startProvider(t, func(c *Config) {
		// Refills are negligible however slow the machine: the bursts are
		// what the test spends.
		c.SendRate, c.SendBurst = 1e-3, 5
		c.SendRatePerIP, c.SendBurstPerIP = 1e-3, 8
	})
	a, b := p.rawStream(t, rawClient(t, crypto.Ed25519)), p.rawStream(t, rawClient(t, crypto.Ed25519))
	for i := range 5 {
		if resp := sendOn(t, a, p, uint32(i)); resp.Code != clientproto.CodeOK {
			t.Fatalf("send %d within the burst: %v", i, resp.Err())
		}
	}
	if resp := sendOn(t, a, p, 6); resp.Code != clientproto.CodeBusy {
		t.Fatalf("a send over the client's burst: code %v, want busy", resp.Code)
	}
	// b shares a's address, which has 3 of its 8 left.
	for i := range 3 {
		if resp := sendOn(t, b, p, uint32(i)); resp.Code != clientproto.CodeOK {
			t.Fatalf("another client's send %d: %v", i, resp.Err())
		}
	}
	if resp := sendOn(t, b, p, 4); resp.Code != clientproto.CodeBusy {
		t.Fatalf("a send over the address's burst: code %v, want busy", resp.Code)
	}
	other := p.rawStream(t, rawClientAt(t, crypto.Ed25519, "127.0.0.2"))
	if resp := sendOn(t, other, p, 1); resp.Code != clientproto.CodeOK {
		t.Fatalf("a client at another address: %v", resp.Err())
	}
	if inj, _ := p.backend.counts(); inj != 9 {
		t.Fatalf("%d packets reached the node, want 9", inj)
	}
	for scope, want := range map[string]float64{"client": 1, "ip": 1} {
		if got := p.metric(t, "sotto_provider_sends_rate_limited_total", "scope", scope); got != want {
			t.Errorf("sends limited by scope %s = %v, want %v", scope, got, want)
		}
	}
}

// Slow readers at one address fill their share of the reply budget, not
// the budget: a client at another address still fetches. Their replies
// are not held past the request timeout: the write deadline resets their
// streams and the bytes come back without them doing anything.
func TestSlowReadersHoldOnlyTheirShareOfTheReplyBudget(t *testing.T) {
	const (
		fetchBytes = 32 << 10
		budget     = 16 * (fetchBytes + replyOverhead)
		share      = budget / 2
	)
	p := startProvider(t, func(c *Config) {
		c.FetchBytes = fetchBytes
		c.ReplyBytes = budget
		c.ReplyBytesPerIP = share
		c.MaxInFlight = 4
		c.RequestTimeout = 3 * time.Second
	})
	ref, batch := fetchFlood(t, p, [16]byte{9})
	var writers sync.WaitGroup
	defer writers.Wait()
	for range 8 {
		st := p.rawStream(t, rawClient(t, crypto.Ed25519))
		writers.Go(func() {
			for {
				if _, err := st.Write(batch); err != nil {
					return
				}
			}
		})
	}
	held := func() float64 { return p.metric(t, "sotto_provider_reply_bytes") }
	waitWithin(t, time.Minute, "the slow readers fill their address's share", func() bool {
		return held() > share-(fetchBytes+replyOverhead)
	})

	good := p.rawStream(t, rawClientAt(t, crypto.Ed25519, "127.0.0.2"))
	if resp := roundTrip(t, good, &clientproto.Request{ID: 1, Op: clientproto.OpFetch, Mailbox: ref}); resp.Code != clientproto.CodeOK || len(resp.Messages) != 7 {
		t.Fatalf("a fetch from another address: code %v, %d messages; want 7", resp.Code, len(resp.Messages))
	}
	waitWithin(t, time.Minute, "the write deadline cuts the slow readers and gives their bytes back", func() bool {
		return held() == 0 && p.metric(t, "sotto_provider_client_streams_reset_total", "reason", "write") >= 1
	})
	p.svc.replies.mu.Lock()
	peak := p.svc.replies.peak
	p.svc.replies.mu.Unlock()
	if peak > share+fetchBytes+replyOverhead {
		t.Fatalf("replies held %d bytes at most; the slow readers' share is %d (and one fetch of the good client)", peak, share)
	}
}

// recordingAccounting records what the host asks; every Redeem is granted.
type recordingAccounting struct {
	interfaces.Accounting
	mu      sync.Mutex
	redeems []interfaces.RedeemRequest
}

func (a *recordingAccounting) Redeem(_ context.Context, req *interfaces.RedeemRequest) (*interfaces.RedeemResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.redeems = append(a.redeems, *req)
	return &interfaces.RedeemResponse{Granted: req.Packets}, nil
}

func (a *recordingAccounting) seen() []interfaces.RedeemRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]interfaces.RedeemRequest(nil), a.redeems...)
}

func TestRedeemIsCheckedByTheHostAndTellsThePluginTheClient(t *testing.T) {
	const current = 100
	rec := &recordingAccounting{Accounting: newTokenAccounting()}
	p := startProvider(t, func(c *Config) {
		c.Accounting = accountingtest.OverGRPC(t, rec) // as a plugin process sees it
		c.CurrentEpoch = func() uint64 { return current }
	})
	c := p.dial(t)
	for _, e := range []uint64{999999, 1000000, current + 2, current - 2, 0} {
		if _, _, err := c.Redeem(ctxT(t), e, 5, []byte("paid:1")); !errors.Is(err, clientproto.ErrBadRequest) {
			t.Fatalf("redeem for epoch %d: err = %v, want ErrBadRequest", e, err)
		}
	}
	if got := rec.seen(); len(got) != 0 {
		t.Fatalf("the plugin saw %d redeems for epochs outside the window", len(got))
	}
	for _, e := range []uint64{current - 1, current, current + 1} {
		if granted, _, err := c.Redeem(ctxT(t), e, 5, []byte("paid:1")); err != nil || granted != 5 {
			t.Fatalf("redeem for epoch %d = %d, %v", e, granted, err)
		}
	}
	got := rec.seen()
	if len(got) != 3 {
		t.Fatalf("the plugin saw %d redeems, want 3", len(got))
	}
	for i, r := range got {
		if !bytes.Equal(r.Client[:], c.pub) {
			t.Errorf("redeem %d: the plugin saw client %x, want the client's key %x", i, r.Client[:8], c.pub[:8])
		}
		if r.Epoch != current-1+uint64(i) || r.Gateway != interfaces.NodeID(p.backend.id) {
			t.Errorf("redeem %d: epoch %d, gateway %x", i, r.Epoch, r.Gateway[:4])
		}
	}
}

// leakyPlugins fail the way real plugins do: with their paths and
// internals in the error text.
type leakyPlugins struct {
	interfaces.Mailboxes
	interfaces.Accounting
}

const secretPath = "/var/lib/sotto-secret/plugins/quota"

func (leakyPlugins) Redeem(_ context.Context, req *interfaces.RedeemRequest) (*interfaces.RedeemResponse, error) {
	switch string(req.Credential) {
	case "spent":
		return nil, fmt.Errorf("quota plugin %s: token table %s.db: %w", secretPath, secretPath, interfaces.ErrDoubleSpend)
	case "forged":
		return nil, fmt.Errorf("quota plugin %s: bad signature under key 0xdeadbeef: %w", secretPath, interfaces.ErrPaymentRequired)
	}
	return nil, fmt.Errorf("open %s.db: permission denied", secretPath)
}

func (leakyPlugins) FetchMailbox(context.Context, *interfaces.FetchMailboxRequest) (*interfaces.FetchMailboxResponse, error) {
	return nil, fmt.Errorf("badger at %s/000042.vlog: %w", secretPath, interfaces.ErrUnavailable)
}

func (leakyPlugins) AckMailbox(context.Context, *interfaces.AckMailboxRequest) (*interfaces.AckMailboxResponse, error) {
	return nil, fmt.Errorf("badger at %s: ID list: %w", secretPath, interfaces.ErrInvalidArgument)
}

// syncBuffer is a log sink safe for the service's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestErrorRepliesCarryACodeAndAShortReasonOnly(t *testing.T) {
	logs := &syncBuffer{}
	leaky := leakyPlugins{}
	p := startProvider(t, func(c *Config) {
		c.Mailboxes = leaky
		c.Accounting = accountingtest.OverGRPC(t, leaky) // plugin errors cross gRPC as text
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	c := p.dial(t)
	tests := []struct {
		name   string
		call   func() error
		code   clientproto.Code
		reason string
	}{
		{"a spent credential", func() error { _, _, err := c.Redeem(ctxT(t), 1, 1, []byte("spent")); return err },
			clientproto.CodePaymentRequired, "credential already spent"},
		{"a forged credential", func() error { _, _, err := c.Redeem(ctxT(t), 1, 1, []byte("forged")); return err },
			clientproto.CodePaymentRequired, "credential refused"},
		{"a failing accounting plugin", func() error { _, _, err := c.Redeem(ctxT(t), 1, 1, []byte("x")); return err },
			clientproto.CodeInternal, "internal"},
		{"a storage plugin that is down", func() error { _, err := c.Fetch(ctxT(t), clientproto.MailboxRef{}, 0, 0); return err },
			clientproto.CodeBusy, "busy"},
		{"a storage plugin refusing the arguments", func() error { return c.Ack(ctxT(t), clientproto.MailboxRef{}, []uint64{1}) },
			clientproto.CodeBadRequest, "bad request"},
		{"a packet of the wrong size", func() error { return c.Send(ctxT(t), p.backend.id, []byte("short")) },
			clientproto.CodeBadRequest, fmt.Sprintf("packet of 5 bytes, this network's are %d", testPacketLength)},
		{"a redeem for a far epoch", func() error { _, _, err := c.Redeem(ctxT(t), 1<<40, 1, []byte("x")); return err },
			clientproto.CodeBadRequest, "epoch 1099511627776 is not the provider's current epoch 1 or a neighbour"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is answered with its code and reason", func(t *testing.T) {
			err := tt.call()
			var e *clientproto.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want a provider's error reply", err)
			}
			if e.Code != tt.code || e.Message != tt.reason {
				t.Fatalf("reply code %v %q, want %v %q", e.Code, e.Message, tt.code, tt.reason)
			}
			if strings.Contains(e.Message, "/") || strings.Contains(e.Message, "badger") || strings.Contains(e.Message, "deadbeef") {
				t.Fatalf("the reply tells the client %q", e.Message)
			}
		})
	}
	if n := strings.Count(logs.String(), secretPath); n < 5 {
		t.Fatalf("the node's log names the plugins' failures %d times, want every one of the 5:\n%s", n, logs.String())
	}
}

// A stream admitted a moment ago whose client has not yet sent its first
// request is not evicted for a newcomer: an attacker reopening streams at
// the address must not cut an honest client before it is ever served.
// Without the grace, the honest stream (the one idle longest) was the
// victim here.
func TestANewStreamIsNotEvictedBeforeItsFirstRequest(t *testing.T) {
	p := startProvider(t, func(c *Config) { c.MaxStreamsPerIP = 2 })
	streams := func() float64 { return p.metric(t, "sotto_provider_client_streams") }

	// The honest client's stream: the protocol is negotiated and the
	// stream admitted, but its first request has not fully arrived.
	frame, err := (&clientproto.Request{ID: 1, Op: clientproto.OpDocument, Epoch: 7}).AppendFrame(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The other two clients are made and connected first: the grace is
	// 1 s, and from the honest stream's admission to the newcomer's only
	// stream openings and one round trip may pass, even on a slow machine.
	idleH, newH := rawClient(t, crypto.Ed25519), rawClient(t, crypto.Ed25519)
	for _, h := range []host.Host{idleH, newH} {
		if err := h.Connect(t.Context(), p.addr(t, "tcp")); err != nil {
			t.Fatal(err)
		}
	}
	honest := p.rawStream(t, rawClient(t, crypto.Ed25519))
	if _, err := honest.Write(frame[:2]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the honest stream is admitted", func() bool { return streams() == 1 })

	// The address's second stream asks and is answered; the third needs
	// a victim.
	idle := p.rawStream(t, idleH)
	if resp := roundTrip(t, idle, &clientproto.Request{ID: 1, Op: clientproto.OpDocument, Epoch: 7}); resp.Code != clientproto.CodeOK {
		t.Fatal(resp.Err())
	}
	newcomer := p.rawStream(t, newH)
	if resp := roundTrip(t, newcomer, &clientproto.Request{ID: 1, Op: clientproto.OpDocument, Epoch: 7}); resp.Code != clientproto.CodeOK {
		t.Fatal(resp.Err())
	}
	if n := p.metric(t, "sotto_provider_client_streams_evicted_total", "reason", "max_streams_per_ip"); n != 1 {
		t.Fatalf("%v streams evicted for the address, want 1", n)
	}

	// The honest client finishes its request and is served.
	if _, err := honest.Write(frame[2:]); err != nil {
		t.Fatal(err)
	}
	_ = honest.SetReadDeadline(time.Now().Add(10 * time.Second))
	body, err := clientproto.ReadFrame(honest, nil, clientproto.MaxResponseLength)
	if err != nil {
		t.Fatalf("the honest stream was cut before its first request: %v", err)
	}
	var resp clientproto.Response
	if err := resp.Decode(body); err != nil || resp.Code != clientproto.CodeOK {
		t.Fatalf("the honest client's reply: %+v, %v", resp, err)
	}
}

// The grace ends: a stream that never asks is evictable once it is
// newStreamGrace old, and until then a table of such streams refuses
// newcomers rather than cut one.
func TestVictimSparesOnlyYoungStreamsThatHaveNotAsked(t *testing.T) {
	now := time.Now().UnixNano()
	young := &clientStream{admitted: now}
	old := &clientStream{admitted: now - int64(2*newStreamGrace)}
	old.active.Store(old.admitted)
	asked := &clientStream{admitted: now}
	asked.asked.Store(true)
	asked.active.Store(now)
	all := func(*clientStream) (bool, int) { return true, 1 }
	for _, tc := range []struct {
		name    string
		streams []*clientStream
		want    *clientStream
	}{
		{"only a young stream that has not asked", []*clientStream{young}, nil},
		{"one past the grace", []*clientStream{young, old}, old},
		{"one that asked, however young", []*clientStream{young, asked}, asked},
	} {
		s := &Service{streams: map[*clientStream]struct{}{}}
		for _, c := range tc.streams {
			s.streams[c] = struct{}{}
		}
		if got := s.victim(all); got != tc.want {
			t.Errorf("%s: victim %p, want %p", tc.name, got, tc.want)
		}
	}
}
