package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces"
)

func TestSendRoutesPackets(t *testing.T) {
	p := startProvider(t, nil)
	c := p.dial(t)
	tests := []struct {
		name          string
		firstHop      [32]byte
		busy          bool
		wantErr       error
		wantInjected  int
		wantForwarded int
	}{
		{name: "a packet for this provider goes to the pipeline", firstHop: p.backend.id, wantInjected: 1},
		{name: "a packet for a layer-0 mix is forwarded as it is", firstHop: [32]byte{0xaa}, wantForwarded: 1},
		{name: "a packet for an unknown first hop is a bad request", firstHop: [32]byte{0xbb}, wantErr: clientproto.ErrBadRequest},
		{name: "a full pipeline makes the provider busy", firstHop: p.backend.id, busy: true, wantErr: clientproto.ErrBusy},
		{name: "a full link queue makes the provider busy", firstHop: [32]byte{0xaa}, busy: true, wantErr: clientproto.ErrBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.backend.mu.Lock()
			p.backend.busy = tt.busy
			p.backend.mu.Unlock()
			i0, f0 := p.backend.counts()
			err := c.Send(ctxT(t), tt.firstHop, packet(1))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			i1, f1 := p.backend.counts()
			if i1-i0 != tt.wantInjected || f1-f0 != tt.wantForwarded {
				t.Fatalf("injected %d, forwarded %d", i1-i0, f1-f0)
			}
		})
	}
	if got := p.metric(t, "sotto_provider_packets_accepted_total", "route", "inject"); got != 1 {
		t.Errorf("packets accepted for inject = %v", got)
	}
	if got := p.metric(t, "sotto_provider_requests_total", "op", "send", "result", "busy"); got != 2 {
		t.Errorf("busy sends = %v", got)
	}
}

func TestSendRefusesPacketsOfAnotherSize(t *testing.T) {
	p := startProvider(t, nil)
	c := p.dial(t)
	for _, n := range []int{1, testPacketLength - 1, testPacketLength + 1, clientproto.MaxPacketLength} {
		if err := c.Send(ctxT(t), p.backend.id, make([]byte, n)); !errors.Is(err, clientproto.ErrBadRequest) {
			t.Errorf("packet of %d bytes: err = %v, want ErrBadRequest", n, err)
		}
	}
	if i, _ := p.backend.counts(); i != 0 {
		t.Fatalf("%d packets injected", i)
	}
}

func TestDocument(t *testing.T) {
	p := startProvider(t, nil)
	c := p.dial(t)
	doc, err := c.Document(ctxT(t), 7)
	if err != nil || string(doc) != "document of epoch 7" {
		t.Fatalf("Document(7) = %q, %v", doc, err)
	}
	if _, err := c.Document(ctxT(t), 8); !errors.Is(err, clientproto.ErrNoDocument) {
		t.Fatalf("Document(8) err = %v, want ErrNoDocument", err)
	}
}

// The response limit holds the largest document the PKI encoding allows
// (docs/SPEC.md, "Client protocol", Limits), which once exceeded it.
func TestTheLargestDocumentIsServed(t *testing.T) {
	p := startProvider(t, func(c *Config) { c.RequestTimeout = 30 * time.Second })
	p.backend.docs[1] = bytes.Repeat([]byte{1}, clientproto.MaxDocumentLength)
	p.backend.docs[2] = bytes.Repeat([]byte{2}, clientproto.MaxDocumentLength+1)
	st := p.rawStream(t, rawClient(t, crypto.Ed25519))
	tests := []struct {
		name  string
		epoch uint64
		code  clientproto.Code
	}{
		{"a document of the largest length is served", 1, clientproto.CodeOK},
		{"a document one byte longer cannot be sent: internal", 2, clientproto.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := roundTrip(t, st, &clientproto.Request{ID: 1, Op: clientproto.OpDocument, Epoch: tt.epoch})
			if resp.Code != tt.code || (tt.code == clientproto.CodeOK && !bytes.Equal(resp.Document, p.backend.docs[tt.epoch])) {
				t.Fatalf("code %s, %d bytes; want %s", resp.Code, len(resp.Document), tt.code)
			}
		})
	}
}

func TestFetchAndAckOwnMailbox(t *testing.T) {
	p := startProvider(t, nil)
	c := p.dial(t)
	fwd := clientproto.StoredMessage{Payload: []byte("forward body")}
	reply := clientproto.StoredMessage{Reply: true, SURBID: [16]byte{4}, Payload: []byte("reply body")}
	ids := p.deliver(t, clientproto.OwnMailbox(c.pub), fwd.AppendTo(nil), reply.AppendTo(nil))

	msgs, err := c.Fetch(ctxT(t), clientproto.MailboxRef{}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].ID != ids[0] || msgs[1].ID != ids[1] {
		t.Fatalf("fetched %+v, want IDs %v", msgs, ids)
	}
	if msgs[0].Reply || !bytes.Equal(msgs[0].Payload, fwd.Payload) ||
		!msgs[1].Reply || msgs[1].SURBID != reply.SURBID || !bytes.Equal(msgs[1].Payload, reply.Payload) {
		t.Fatalf("fetched contents differ: %+v", msgs)
	}
	if d := time.Until(msgs[0].Expires); d < 50*time.Minute || d > time.Hour+2*time.Second {
		t.Fatalf("expires in %v, want about an hour", d)
	}
	if msgs, err := c.Fetch(ctxT(t), clientproto.MailboxRef{}, ids[0], 1); err != nil || len(msgs) != 1 || msgs[0].ID != ids[1] {
		t.Fatalf("fetch after %d limit 1 = %+v, %v", ids[0], msgs, err)
	}
	if err := c.Ack(ctxT(t), clientproto.MailboxRef{}, ids[:1]); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(ctxT(t), clientproto.MailboxRef{}, ids[:1]); err != nil {
		t.Fatalf("a second ack of the same ID: %v", err)
	}
	msgs, err = c.Fetch(ctxT(t), clientproto.MailboxRef{}, 0, 0)
	if err != nil || len(msgs) != 1 || msgs[0].ID != ids[1] {
		t.Fatalf("after ack: %+v, %v", msgs, err)
	}
	if got := p.metric(t, "sotto_provider_mailbox_entries_returned_total"); got != 4 {
		t.Errorf("entries returned = %v, want 4", got)
	}
}

func TestOtherClientsCannotReachMyMailbox(t *testing.T) {
	p := startProvider(t, nil)
	me, other := p.dial(t), p.dial(t)
	ids := p.deliver(t, clientproto.OwnMailbox(me.pub), (&clientproto.StoredMessage{Payload: []byte("mine")}).AppendTo(nil))

	t.Run("another client's own mailbox is its own, not mine", func(t *testing.T) {
		msgs, err := other.Fetch(ctxT(t), clientproto.MailboxRef{}, 0, 0)
		if err != nil || len(msgs) != 0 {
			t.Fatalf("other fetched %+v, %v", msgs, err)
		}
		if err := other.Ack(ctxT(t), clientproto.MailboxRef{}, ids); err != nil {
			t.Fatal(err)
		}
		if msgs, _ := me.Fetch(ctxT(t), clientproto.MailboxRef{}, 0, 0); len(msgs) != 1 {
			t.Fatalf("another client's ack deleted my message: %+v", msgs)
		}
	})
	t.Run("a client whose key is not Ed25519 is forbidden", func(t *testing.T) {
		st := p.rawStream(t, rawClient(t, crypto.Secp256k1))
		for _, req := range []clientproto.Request{
			{ID: 1, Op: clientproto.OpFetch},
			{ID: 2, Op: clientproto.OpAck, IDs: ids},
			{ID: 3, Op: clientproto.OpSend, FirstHop: p.backend.id, Packet: packet(1)},
		} {
			resp := roundTrip(t, st, &req)
			if resp.ID != req.ID || !errors.Is(resp.Err(), clientproto.ErrForbidden) {
				t.Fatalf("%s: %+v, want forbidden", req.Op, resp)
			}
		}
	})
}

func TestSURBMailboxIsFetchedByCapability(t *testing.T) {
	p := startProvider(t, nil)
	a, b := p.dial(t), p.dial(t)
	capability := [16]byte{1, 2, 3, 4}
	p.deliver(t, clientproto.SURBMailbox(capability), (&clientproto.StoredMessage{Payload: []byte("via SURB")}).AppendTo(nil))
	tests := []struct {
		name   string
		client *testClient
		ref    clientproto.MailboxRef
		want   int
	}{
		{"the capability opens the mailbox", a, clientproto.MailboxRef{SURB: true, Capability: capability}, 1},
		{"any client holding the capability may fetch", b, clientproto.MailboxRef{SURB: true, Capability: capability}, 1},
		{"another capability opens another mailbox", a, clientproto.MailboxRef{SURB: true, Capability: [16]byte{9}}, 0},
		{"the own mailbox is not the SURB mailbox", a, clientproto.MailboxRef{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, err := tt.client.Fetch(ctxT(t), tt.ref, 0, 0)
			if err != nil || len(msgs) != tt.want {
				t.Fatalf("fetched %d messages (%v), want %d", len(msgs), err, tt.want)
			}
		})
	}
}

func TestUnreadableEntriesAreSkipped(t *testing.T) {
	p := startProvider(t, nil)
	c := p.dial(t)
	good := (&clientproto.StoredMessage{Payload: []byte("good")}).AppendTo(nil)
	// Three unreadable entries first, so that a whole storage batch of
	// two is unreadable: the provider must look further.
	ids := p.deliver(t, clientproto.OwnMailbox(c.pub), []byte{9, 1}, nil, []byte{2, 1}, good, []byte{}, good)
	msgs, err := c.Fetch(ctxT(t), clientproto.MailboxRef{}, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].ID != ids[3] {
		t.Fatalf("fetched %+v, want only ID %d", msgs, ids[3])
	}
	msgs, err = c.Fetch(ctxT(t), clientproto.MailboxRef{}, 0, 0)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("fetched %+v, %v; want the two good ones", msgs, err)
	}
	if got := p.metric(t, "sotto_provider_corrupt_entries_total"); got < 4 {
		t.Fatalf("corrupt entries counted = %v", got)
	}
}

func TestOnlyUnreadableEntriesAreNotAnEmptyMailbox(t *testing.T) {
	p := startProvider(t, nil)
	c := p.dial(t)
	good := (&clientproto.StoredMessage{Payload: []byte("good")}).AppendTo(nil)
	// With limit 2, a Fetch scans four batches of two: eight unreadable
	// entries, and more behind them.
	var entries [][]byte
	for i := range 9 {
		entries = append(entries, []byte{9, byte(i)})
	}
	ids := p.deliver(t, clientproto.OwnMailbox(c.pub), append(entries, good)...)
	_, err := c.Fetch(ctxT(t), clientproto.MailboxRef{}, 0, 2)
	if !errors.Is(err, clientproto.ErrInternal) {
		t.Fatalf("fetch over unreadable entries: err = %v, want ErrInternal", err)
	}
	if want := fmt.Sprintf("unreadable mailbox entries up to ID %d", ids[7]); !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %q, want it to say %q", err, want)
	}
	msgs, err := c.Fetch(ctxT(t), clientproto.MailboxRef{}, ids[7], 2)
	if err != nil || len(msgs) != 1 || msgs[0].ID != ids[9] {
		t.Fatalf("fetch past the ID named = %+v, %v; want ID %d", msgs, err, ids[9])
	}
}

// pluginReplies are Mailboxes and Accounting that answer with fixed
// responses (possibly nil, without an error).
type pluginReplies struct {
	interfaces.Mailboxes
	interfaces.Accounting
	fetch  *interfaces.FetchMailboxResponse
	ack    *interfaces.AckMailboxResponse
	redeem *interfaces.RedeemResponse
}

func (r *pluginReplies) FetchMailbox(context.Context, *interfaces.FetchMailboxRequest) (*interfaces.FetchMailboxResponse, error) {
	return r.fetch, nil
}

func (r *pluginReplies) AckMailbox(context.Context, *interfaces.AckMailboxRequest) (*interfaces.AckMailboxResponse, error) {
	return r.ack, nil
}

func (r *pluginReplies) Redeem(context.Context, *interfaces.RedeemRequest) (*interfaces.RedeemResponse, error) {
	return r.redeem, nil
}

func TestMalformedPluginRepliesAreInternalErrors(t *testing.T) {
	stored := (&clientproto.StoredMessage{Payload: []byte("x")}).AppendTo(nil)
	tests := []struct {
		name    string
		plugins *pluginReplies
		call    func(*testClient) error
	}{
		{"a nil fetch response", &pluginReplies{}, func(c *testClient) error {
			_, err := c.Fetch(ctxT(t), clientproto.MailboxRef{}, 0, 0)
			return err
		}},
		{"fetched entries that do not follow after", &pluginReplies{fetch: &interfaces.FetchMailboxResponse{
			Entries: []interfaces.MailboxEntry{{ID: 5, Payload: stored}, {ID: 5, Payload: stored}},
		}}, func(c *testClient) error {
			_, err := c.Fetch(ctxT(t), clientproto.MailboxRef{}, 0, 0)
			return err
		}},
		{"a nil ack response", &pluginReplies{}, func(c *testClient) error {
			return c.Ack(ctxT(t), clientproto.MailboxRef{}, []uint64{1})
		}},
		{"a nil redeem response", &pluginReplies{}, func(c *testClient) error {
			_, _, err := c.Redeem(ctxT(t), 1, 1, []byte("paid:1"))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is an internal error", func(t *testing.T) {
			p := startProvider(t, func(c *Config) {
				c.Mailboxes = tt.plugins
				c.Accounting = tt.plugins
			})
			c := p.dial(t)
			if err := tt.call(c); !errors.Is(err, clientproto.ErrInternal) {
				t.Fatalf("err = %v, want ErrInternal", err)
			}
			// The stream goes on.
			if _, err := c.Document(ctxT(t), 7); err != nil {
				t.Fatalf("a request after: %v", err)
			}
		})
	}
}

func TestFetchKeepsToTheByteBudget(t *testing.T) {
	p := startProvider(t, func(c *Config) { c.FetchBytes = 10 << 10 })
	c := p.dial(t)
	big := (&clientproto.StoredMessage{Payload: make([]byte, 4<<10)}).AppendTo(nil)
	huge := (&clientproto.StoredMessage{Payload: make([]byte, 20<<10)}).AppendTo(nil)
	p.deliver(t, clientproto.OwnMailbox(c.pub), huge, big, big, big)
	var got []int
	after := uint64(0)
	for {
		msgs, err := c.Fetch(ctxT(t), clientproto.MailboxRef{}, after, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		got = append(got, len(msgs))
		after = msgs[len(msgs)-1].ID
	}
	// The oversize message comes alone; then two 4 KiB ones fit in 10 KiB.
	if len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 1 {
		t.Fatalf("fetch sizes %v, want [1 2 1]", got)
	}
}

func TestSendingCostsRedeemedCredit(t *testing.T) {
	p := startProvider(t, func(c *Config) { c.Accounting = newTokenAccounting() })
	c := p.dial(t)
	ctx := ctxT(t)
	if err := c.Send(ctx, p.backend.id, packet(1)); !errors.Is(err, clientproto.ErrPaymentRequired) {
		t.Fatalf("send without credit: err = %v, want ErrPaymentRequired", err)
	}
	if _, _, err := c.Redeem(ctx, 1, 5, []byte("forged")); !errors.Is(err, clientproto.ErrPaymentRequired) {
		t.Fatalf("redeem of a bad credential: err = %v", err)
	}
	granted, receipt, err := c.Redeem(ctx, 1, 2, []byte("paid:1"))
	if err != nil || granted != 2 || string(receipt) != "ok" {
		t.Fatalf("redeem = %d, %q, %v", granted, receipt, err)
	}
	if _, _, err := c.Redeem(ctx, 1, 2, []byte("paid:1")); !errors.Is(err, clientproto.ErrPaymentRequired) {
		t.Fatalf("double spend: err = %v", err)
	}
	// A refused packet does not spend credit.
	if err := c.Send(ctx, [32]byte{0xbb}, packet(1)); !errors.Is(err, clientproto.ErrBadRequest) {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := c.Send(ctx, p.backend.id, packet(byte(i))); err != nil {
			t.Fatalf("send %d after redeem: %v", i, err)
		}
	}
	if err := c.Send(ctx, p.backend.id, packet(3)); !errors.Is(err, clientproto.ErrPaymentRequired) {
		t.Fatalf("send past the credit: err = %v", err)
	}
	if got := p.metric(t, "sotto_provider_requests_total", "op", "redeem", "result", "payment_required"); got != 2 {
		t.Errorf("refused redeems = %v", got)
	}
}

func TestGarbageResetsOnlyThatStream(t *testing.T) {
	p := startProvider(t, nil)
	good := p.dial(t)
	tests := []struct {
		name    string
		garbage []byte
	}{
		{"a frame longer than any request", []byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}},
		{"a frame too short for a header", []byte{0, 0, 0, 2, 1, 2}},
		{"a send without its first hop", []byte{0, 0, 0, 5, byte(clientproto.OpSend), 0, 0, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" resets the stream", func(t *testing.T) {
			st := p.rawStream(t, rawClient(t, crypto.Ed25519))
			if _, err := st.Write(tt.garbage); err != nil {
				t.Fatal(err)
			}
			_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := st.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
				t.Fatalf("read err = %v, want a reset", err)
			}
			if err := good.Send(ctxT(t), p.backend.id, packet(1)); err != nil {
				t.Fatalf("another client's send: %v", err)
			}
		})
	}
	if got := p.metric(t, "sotto_provider_client_streams_reset_total", "reason", "malformed"); got != 3 {
		t.Errorf("malformed resets = %v", got)
	}
}

func TestUnknownOpsAreAnsweredAndTheStreamKept(t *testing.T) {
	p := startProvider(t, nil)
	st := p.rawStream(t, rawClient(t, crypto.Ed25519))
	frame := []byte{0, 0, 0, 7, 42, 0, 0, 0, 9, 1, 2}
	if _, err := st.Write(frame); err != nil {
		t.Fatal(err)
	}
	body, err := clientproto.ReadFrame(st, nil, clientproto.MaxResponseLength)
	if err != nil {
		t.Fatal(err)
	}
	var resp clientproto.Response
	if err := resp.Decode(body); err != nil || resp.ID != 9 || !errors.Is(resp.Err(), clientproto.ErrUnsupported) {
		t.Fatalf("reply %+v, %v", resp, err)
	}
	if resp := roundTrip(t, st, &clientproto.Request{ID: 10, Op: clientproto.OpDocument, Epoch: 7}); resp.Code != clientproto.CodeOK {
		t.Fatalf("after an unknown op: %+v", resp)
	}
}

func TestSlowClientsAreCut(t *testing.T) {
	p := startProvider(t, func(c *Config) {
		c.RequestTimeout = 200 * time.Millisecond
		c.IdleTimeout = 400 * time.Millisecond
	})
	tests := []struct {
		name   string
		prefix []byte
		reason string
	}{
		{"a client that trickles a frame is cut after the request timeout", []byte{0, 0, 0, 13, 1, 0}, "timeout"},
		{"an idle client is cut after the idle timeout", nil, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := p.rawStream(t, rawClient(t, crypto.Ed25519))
			if tt.prefix != nil {
				if _, err := st.Write(tt.prefix); err != nil {
					t.Fatal(err)
				}
			} else if resp := roundTrip(t, st, &clientproto.Request{ID: 1, Op: clientproto.OpDocument, Epoch: 7}); resp.Code != 0 {
				t.Fatal(resp.Err())
			}
			_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			if _, err := st.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
				t.Fatalf("read err = %v, want a reset", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("cut after %v", d)
			}
		})
	}
}

func TestSlowRequestsAreBoundedPerStream(t *testing.T) {
	block := make(chan struct{})
	p := startProvider(t, func(c *Config) { c.MaxInFlight = 2 })
	p.backend.block = block
	c := p.dial(t)
	// Two document requests occupy the stream's slots; a third request
	// is not read until one of them is done.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { _, _ = c.Document(ctxT(t), 7) })
	}
	for p.backend.waits.Load() < 2 { // the two are being served
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Send(ctx, p.backend.id, packet(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a third request on a full stream: err = %v, want a deadline", err)
	}
	close(block)
	wg.Wait()
	if err := c.Send(ctxT(t), p.backend.id, packet(1)); err != nil {
		t.Fatalf("after the slow requests: %v", err)
	}
}

func TestStreamFloodIsLimited(t *testing.T) {
	p := startProvider(t, nil)
	victim := p.dial(t)
	flooder := rawClient(t, crypto.Ed25519)
	if err := flooder.Connect(ctxT(t), p.addr(t, "tcp")); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var (
		mu     sync.Mutex
		served int
		wg     sync.WaitGroup
	)
	streams := make(chan network.Stream, n)
	for i := range n {
		wg.Go(func() {
			st, err := flooder.NewStream(ctxT(t), p.host.ID(), clientproto.Protocol)
			if err != nil {
				return
			}
			streams <- st
			req := clientproto.Request{ID: uint32(i), Op: clientproto.OpDocument, Epoch: 7}
			frame, _ := req.AppendFrame(nil)
			if _, err := st.Write(frame); err != nil {
				return
			}
			_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := clientproto.ReadFrame(st, nil, clientproto.MaxResponseLength); err == nil {
				mu.Lock()
				served++
				mu.Unlock()
			}
		})
	}
	if err := victim.Send(ctxT(t), p.backend.id, packet(1)); err != nil {
		t.Fatalf("the other client's send during the flood: %v", err)
	}
	wg.Wait()
	close(streams)
	for st := range streams {
		st.Reset()
	}
	if served == 0 || served > 4 {
		t.Fatalf("%d of %d streams served, want 1 to MaxStreamsPerClient (4)", served, n)
	}
	if got := p.metric(t, "sotto_provider_client_streams_refused_total", "reason", "max_streams_per_client"); got < n-4 {
		t.Fatalf("streams refused = %v", got)
	}
}

func TestConcurrentRequestsShareOneStream(t *testing.T) {
	// Sixteen Fetches served at once reserve 16 × (FetchBytes + 266)
	// bytes, a little over the default client share of 4 MiB: on a slow
	// machine the sixteenth would be busy, which is the share working,
	// not what this test is about.
	p := startProvider(t, func(c *Config) { c.ReplyBytesPerClient = 2 * DefaultReplyBytesPerClient })
	c := p.dial(t)
	p.deliver(t, clientproto.OwnMailbox(c.pub), (&clientproto.StoredMessage{Payload: []byte("x")}).AppendTo(nil))
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Go(func() {
			errs <- c.Send(ctxT(t), p.backend.id, packet(byte(i)))
		})
		wg.Go(func() {
			msgs, err := c.Fetch(ctxT(t), clientproto.MailboxRef{}, 0, 0)
			if err == nil && len(msgs) != 1 {
				err = errors.New("fetch answered another request's question")
			}
			errs <- err
		})
		wg.Go(func() {
			doc, err := c.Document(ctxT(t), 7)
			if err == nil && string(doc) != "document of epoch 7" {
				err = errors.New("document answered another request's question")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if i, _ := p.backend.counts(); i != n {
		t.Fatalf("%d packets injected, want %d", i, n)
	}
	if got := p.metric(t, "sotto_provider_client_streams"); got != 1 {
		t.Fatalf("%v client streams open, want 1", got)
	}
}

func TestCloseStopsEveryStream(t *testing.T) {
	p := startProvider(t, nil)
	st := p.rawStream(t, rawClient(t, crypto.Ed25519))
	if resp := roundTrip(t, st, &clientproto.Request{ID: 1, Op: clientproto.OpDocument, Epoch: 7}); resp.Code != 0 {
		t.Fatal(resp.Err())
	}
	p.svc.Close()
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Fatalf("read after Close: %v, want a reset", err)
	}
	st2 := p.rawStream(t, rawClient(t, crypto.Ed25519))
	_ = st2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := st2.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Fatalf("a stream after Close: %v, want a reset", err)
	}
}

func TestConfigIsValidated(t *testing.T) {
	ok := Config{Backend: newBackend(), Mailboxes: nilMailboxes{}, PacketLength: testPacketLength}
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"a config without a backend is refused", func(c *Config) { c.Backend = nil }},
		{"a config without mailboxes is refused", func(c *Config) { c.Mailboxes = nil }},
		{"a zero packet length is refused", func(c *Config) { c.PacketLength = 0 }},
		{"a packet length over the protocol's is refused", func(c *Config) { c.PacketLength = clientproto.MaxPacketLength + 1 }},
		{"a fetch limit over the protocol's is refused", func(c *Config) { c.FetchLimit = clientproto.MaxFetchLimit + 1 }},
		{"a fetch budget over the protocol's is refused", func(c *Config) { c.FetchBytes = clientproto.MaxFetchBytes + 1 }},
		{"a negative timeout is refused", func(c *Config) { c.IdleTimeout = -1 }},
		{"a negative first-request timeout is refused", func(c *Config) { c.FirstRequestTimeout = -1 }},
		{"a negative bound on streams per IP is refused", func(c *Config) { c.MaxStreamsPerIP = -1 }},
		{"a negative bound on requests is refused", func(c *Config) { c.MaxRequests = -1 }},
		{"a reply budget below the fetch budget is refused", func(c *Config) { c.ReplyBytes = DefaultFetchBytes - 1 }},
		{"a negative reply share is refused", func(c *Config) { c.ReplyBytesPerIP = -1 }},
		{"a negative send rate is refused", func(c *Config) { c.SendRate = -1 }},
		{"a send rate that is not a number is refused", func(c *Config) { c.SendRatePerIP = math.NaN() }},
		{"a negative send burst is refused", func(c *Config) { c.SendBurstPerIP = -1 }},
		{"accounting without the epoch clock is refused", func(c *Config) { c.Accounting = newTokenAccounting() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			if _, err := New(c); !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
	s, err := New(ok)
	if err != nil {
		t.Fatalf("a minimal config: %v", err)
	}
	s.Close()
	if clientproto.MaxCredentialLength != interfaces.MaxCredentialLen {
		t.Fatal("the protocol's credential limit differs from the accounting contract's")
	}
}

type nilMailboxes struct{ interfaces.Mailboxes }

// BenchmarkSend measures Send round trips over loopback TCP (Noise,
// yamux) into a backend that only records: the cost of the client
// protocol itself, sequential and with 16 concurrent senders on one stream.
func BenchmarkSend(b *testing.B) {
	for _, conc := range []int{1, 16} {
		b.Run(map[int]string{1: "sequential", 16: "parallel16"}[conc], func(b *testing.B) {
			p := startProvider(b, nil)
			c := p.dial(b)
			pkt := packet(1)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			start := time.Now()
			n := 0
			if conc == 1 {
				for b.Loop() {
					if err := c.Send(ctx, p.backend.id, pkt); err != nil {
						b.Fatal(err)
					}
					n++
				}
			} else {
				b.SetParallelism(conc)
				b.ResetTimer()
				start = time.Now()
				var mu sync.Mutex
				b.RunParallel(func(pb *testing.PB) {
					k := 0
					for pb.Next() {
						if err := c.Send(ctx, p.backend.id, pkt); err != nil {
							b.Error(err)
							return
						}
						k++
					}
					mu.Lock()
					n += k
					mu.Unlock()
				})
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "sends/s")
		})
	}
}
