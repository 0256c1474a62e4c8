package provider

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/pkidoc"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/core/topology"
	"github.com/sottonet/sotto/interfaces"
)

// withDownstreamDocument gives the backend a real current document stating
// a downstream of slots slots every interval.
func withDownstreamDocument(t testing.TB, b *recordingBackend, interval time.Duration, slots uint16) {
	t.Helper()
	doc, err := pkidoc.NewDocument("test", 7, pkidoc.NetworkParams{Hops: 3, PayloadLen: 2048, Layers: 3, EpochPeriod: time.Minute,
		LambdaP: 1, LambdaL: 1, DownstreamInterval: interval, DownstreamSlots: slots}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b.docs[clientproto.CurrentEpoch] = raw
}

func readPush(t testing.TB, st network.Stream) (int, *clientproto.Push) {
	t.Helper()
	_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
	body, err := clientproto.ReadFrame(st, nil, clientproto.MaxResponseLength)
	if err != nil {
		t.Fatal(err)
	}
	var resp clientproto.Response
	if err := resp.Decode(body); err != nil {
		t.Fatal(err)
	}
	if err := resp.Err(); err != nil || resp.Op != clientproto.OpSubscribe {
		t.Fatalf("%v reply: %v", resp.Op, err)
	}
	return len(body) + clientproto.FrameHeaderLength, resp.Push
}

// A subscribed client gets one frame of one length per interval, k slots
// at most filled, each message once; a pulse's acks delete the entries
// and the next frames say the pulse is applied.
func TestTheDownstreamPushesFixedFramesAndAppliesPulses(t *testing.T) {
	p := startProvider(t, nil)
	withDownstreamDocument(t, p.backend, 50*time.Millisecond, 2)
	h := rawClient(t, crypto.Ed25519)
	own := clientproto.OwnMailbox(clientKeyOf(t, h))
	surb := clientproto.MailboxRef{SURB: true, Capability: [16]byte{7}}
	var stored [][]byte
	for i := range 5 {
		stored = append(stored, (&clientproto.StoredMessage{Payload: fmt.Appendf(nil, "message %d", i)}).AppendTo(nil))
	}
	ids := p.deliver(t, own, stored[:4]...)
	// The longest stored message, a SURB reply of a whole packet body
	// (tag included), fills a slot exactly.
	g := testGeometry(t)
	longest := (&clientproto.StoredMessage{Reply: true, SURBID: [16]byte{1}, Payload: make([]byte, g.PayloadTagLength+g.ForwardPayloadLength)}).AppendTo(nil)
	if len(longest) != clientproto.SlotLength(g) {
		t.Fatalf("the longest stored message has %d bytes, a slot %d", len(longest), clientproto.SlotLength(g))
	}
	surbIDs := p.deliver(t, clientproto.SURBMailbox(surb.Capability), longest)
	st := p.rawStream(t, h)
	sub, err := (&clientproto.Request{ID: 9, Op: clientproto.OpSubscribe, Cursors: []clientproto.Cursor{{}, {Mailbox: surb}}}).AppendFrame(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(sub); err != nil {
		t.Fatal(err)
	}
	want := clientproto.PushFrameLength(2, clientproto.SlotLength(testGeometry(t)))
	got := map[clientproto.EntryAck]bool{}
	var acks []clientproto.EntryAck
	var last time.Time
	for i := range 6 {
		n, push := readPush(t, st)
		now := time.Now()
		if n != want {
			t.Fatalf("frame %d of %d bytes, want %d", i, n, want)
		}
		if i > 0 && now.Sub(last) < 20*time.Millisecond {
			t.Fatalf("frame %d came %v after the one before: the cadence is 50ms", i, now.Sub(last))
		}
		last = now
		if len(push.Messages) > 2 || push.Seq != uint64(i+1) {
			t.Fatalf("frame %d: seq %d, %d messages", i, push.Seq, len(push.Messages))
		}
		for _, m := range push.Messages {
			e := clientproto.EntryAck{Mailbox: m.Mailbox, ID: m.ID}
			if got[e] {
				t.Fatalf("entry %v pushed twice (frame %d)", e, i)
			}
			got[e] = true
			acks = append(acks, e)
		}
	}
	if len(got) != 5 {
		t.Fatalf("%d of 5 entries pushed: %v", len(got), got)
	}
	pulse, err := (&clientproto.Request{ID: 10, Op: clientproto.OpPulse, Seq: 1, AckSlots: 8, Acks: acks}).AppendFrame(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(pulse); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		_, push := readPush(t, st)
		if push.Acked == 1 {
			break
		}
		if i > 20 {
			t.Fatal("the pulse was never applied")
		}
	}
	for _, box := range []clientproto.MailboxID{own, clientproto.SURBMailbox(surb.Capability)} {
		res, err := p.store.FetchMailbox(ctxT(t), &interfaces.FetchMailboxRequest{Mailbox: box, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Entries) != 0 {
			t.Fatalf("%d entries left after their acks (ids %v %v)", len(res.Entries), ids, surbIDs)
		}
	}
	if v := p.metric(t, "sotto_provider_push_slots_total", "kind", "message"); v != 5 {
		t.Fatalf("%v message slots counted", v)
	}
}

func clientKeyOf(t testing.TB, h host.Host) []byte {
	t.Helper()
	raw, err := h.Peerstore().PubKey(h.ID()).Raw()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func testGeometry(t testing.TB) *sphinx.Geometry {
	t.Helper()
	g, err := topology.Geometry(&pkidoc.NetworkParams{Hops: 3, PayloadLen: 2048})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// client/p2p's Subscribe gets what waits, in frames of one length, and
// its pulses delete what they acknowledge.
func TestP2PSubscribeReceivesAndAcknowledges(t *testing.T) {
	p := startProvider(t, nil)
	withDownstreamDocument(t, p.backend, 30*time.Millisecond, 1)
	c := p.dial(t)
	own := clientproto.OwnMailbox(c.pub)
	p.deliver(t, own, (&clientproto.StoredMessage{Payload: []byte("one")}).AppendTo(nil), (&clientproto.StoredMessage{Payload: []byte("two")}).AppendTo(nil))
	d, err := c.Subscribe(ctxT(t), []clientproto.Cursor{{}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var got []clientproto.EntryAck
	for i := 0; len(got) < 2; i++ {
		push, err := d.Next(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range push.Messages {
			got = append(got, clientproto.EntryAck{Mailbox: m.Mailbox, ID: m.ID})
		}
		if i > 10 {
			t.Fatalf("%d of 2 messages after %d frames", len(got), i)
		}
	}
	if err := d.Pulse(ctxT(t), &clientproto.Request{Op: clientproto.OpPulse, Seq: 1, AckSlots: 2, Acks: got}); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		push, err := d.Next(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if push.Acked == 1 {
			break
		}
		if i > 20 {
			t.Fatal("pulse not applied")
		}
	}
	res, err := p.store.FetchMailbox(ctxT(t), &interfaces.FetchMailboxRequest{Mailbox: own, Limit: 10})
	if err != nil || len(res.Entries) != 0 {
		t.Fatalf("%v entries left (%v)", res, err)
	}
}

// BenchmarkDownstreamWait measures what the pushed downstream adds to a
// message's end-to-end latency beyond slot wait and mixing: from the
// moment the node stores it to the moment the client has read it from a
// push frame, at the default interval (80 ms) and one slot, over a real
// libp2p connection and Badger store. Messages are stored at a random
// phase of the cadence.
func BenchmarkDownstreamWait(b *testing.B) {
	p := startProvider(b, nil)
	iv := pkidoc.DefaultDownstreamInterval
	withDownstreamDocument(b, p.backend, iv, 1)
	c := p.dial(b)
	own := clientproto.OwnMailbox(c.pub)
	d, err := c.Subscribe(ctxT(b), []clientproto.Cursor{{}})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	frames := make(chan *clientproto.Push, 64)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // pulses keep the downstream alive
		t := time.NewTicker(iv)
		defer t.Stop()
		for seq := uint64(1); ; seq++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if d.Pulse(context.Background(), &clientproto.Request{Op: clientproto.OpPulse, Seq: seq, AckSlots: 2}) != nil {
				return
			}
		}
	}()
	go func() {
		for {
			push, err := d.Next(context.Background())
			if err != nil {
				close(frames)
				return
			}
			frames <- push
		}
	}()
	stored := (&clientproto.StoredMessage{Payload: []byte("wait")}).AppendTo(nil)
	var waits []time.Duration
	rnd := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		time.Sleep(time.Duration(rnd.Int64N(int64(iv))))
		start := time.Now()
		p.deliver(b, own, stored)
		p.svc.Stored(interfaces.MailboxID(own)) // as the node's delivery does
		for got := false; !got; {
			push, ok := <-frames
			if !ok {
				b.Fatal("downstream ended")
			}
			got = len(push.Messages) > 0
		}
		waits = append(waits, time.Since(start))
	}
	slices.Sort(waits)
	q := func(f float64) float64 {
		return float64(waits[min(len(waits)-1, int(f*float64(len(waits))))]) / 1e6
	}
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(waits[len(waits)-1])/1e6, "max-ms")
}

// A downstream fetches a mailbox at its next frame once the node says it
// stored there (Stored), and every sweep otherwise.
func TestStoredWakesTheDownstream(t *testing.T) {
	// A sweep every 4 s: an announced message must come well before the
	// next sweep (within 2 s, room for a loaded machine), an unannounced
	// one at a sweep.
	old := sweepInterval
	sweepInterval = 4 * time.Second
	t.Cleanup(func() { sweepInterval = old })
	p := startProvider(t, nil)
	withDownstreamDocument(t, p.backend, 20*time.Millisecond, 1)
	c := p.dial(t)
	own := clientproto.OwnMailbox(c.pub)
	d, err := c.Subscribe(ctxT(t), []clientproto.Cursor{{}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	go func() { // pulses keep it alive
		for seq := uint64(1); ; seq++ {
			time.Sleep(20 * time.Millisecond)
			if d.Pulse(context.Background(), &clientproto.Request{Op: clientproto.OpPulse, Seq: seq, AckSlots: 2}) != nil {
				return
			}
		}
	}()
	wait := func() time.Duration {
		start := time.Now()
		for {
			push, err := d.Next(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(push.Messages) > 0 {
				return time.Since(start)
			}
		}
	}
	for range 3 { // past the subscription's first sweep
		if _, err := d.Next(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	stored := (&clientproto.StoredMessage{Payload: []byte("x")}).AppendTo(nil)
	p.deliver(t, own, stored)
	p.svc.Stored(interfaces.MailboxID(own))
	if w := wait(); w > sweepInterval/2 {
		t.Fatalf("a message the node announced waited %v", w)
	}
	p.deliver(t, own, stored) // behind the node's back
	if w := wait(); w > 3*sweepInterval {
		t.Fatalf("an unannounced message waited %v, more than a sweep", w)
	}
}
