package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/interfaces"
)

// protoClient is a client of a provider over the real client protocol
// (/sotto/client/1.0.0 on its own libp2p host), with nothing but the wire
// format: what an attacker would write.
type protoClient struct {
	t    testing.TB
	pub  ed25519.PublicKey
	mu   sync.Mutex
	st   network.Stream
	next uint32
}

func dialClient(t testing.TB, prov *testNode) *protoClient {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.NoListenAddrs, libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ph := prov.n.Host()
	if err := h.Connect(ctx, peer.AddrInfo{ID: ph.ID(), Addrs: ph.Addrs()}); err != nil {
		t.Fatal(err)
	}
	st, err := h.NewStream(ctx, ph.ID(), clientproto.Protocol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Reset() })
	return &protoClient{t: t, pub: pub, st: st}
}

// do sends one request and reads its reply.
func (c *protoClient) do(req *clientproto.Request) *clientproto.Response {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	req.ID = c.next
	frame, err := req.AppendFrame(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.st.Write(frame); err != nil {
		c.t.Fatal(err)
	}
	_ = c.st.SetReadDeadline(time.Now().Add(20 * time.Second))
	body, err := clientproto.ReadFrame(c.st, nil, clientproto.MaxResponseLength)
	if err != nil {
		c.t.Fatal(err)
	}
	var resp clientproto.Response
	if err := resp.Decode(body); err != nil {
		c.t.Fatal(err)
	}
	return &resp
}

// send hands a packet to the provider, which must accept it.
func (c *protoClient) send(first [32]byte, pkt []byte) {
	c.t.Helper()
	if resp := c.do(&clientproto.Request{Op: clientproto.OpSend, FirstHop: first, Packet: pkt}); resp.Code != clientproto.CodeOK {
		c.t.Fatalf("send: %v", resp.Err())
	}
}

// fetchOwn returns the messages of the client's own mailbox.
func (c *protoClient) fetchOwn() []clientproto.Message {
	c.t.Helper()
	resp := c.do(&clientproto.Request{Op: clientproto.OpFetch, Limit: clientproto.MaxFetchLimit})
	if resp.Code != clientproto.CodeOK {
		c.t.Fatalf("fetch: %v", resp.Err())
	}
	return resp.Messages
}

// packetTo builds a forward packet over path with body for the test's
// geometry (and a SURB when surb is set).
func packetTo(t testing.TB, g *sphinx.Geometry, path []sphinx.PathHop, surb, body []byte) []byte {
	t.Helper()
	payload, err := clientproto.PackForward(g, surb, body)
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := sphinx.NewPacket(rand.Reader, g, path, payload)
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

// dropped is the count of a drop reason as the node's /metrics serves it.
func dropped(t testing.TB, tnode *testNode, reason string) float64 {
	t.Helper()
	mfs, err := tnode.n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sotto_packets_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// The attack of the review: a client builds a packet whose only hop is
// the victim's provider, with a delivery command, and sends it to that
// provider as its gateway. The provider accepts it (it cannot know before
// unwrapping) and then drops it, counted, instead of storing it. Skipping
// only the mixes, or naming another provider as the first hop, is refused
// too.
func TestAOneHopPacketIsRefused(t *testing.T) {
	tn := newTestNet(t, netSpec{mixes: 2, providers: 2, layers: 2, mu: 200})
	er := tn.route()
	gw, dst := er.providers[0], er.providers[1]
	gwNode := tn.nodeByID(gw.id)
	g := gwNode.n.geo
	victim := dialClient(t, gwNode)
	attacker := dialClient(t, gwNode)
	mb := clientproto.OwnMailbox(victim.pub)

	oneHop := packetTo(t, g, []sphinx.PathHop{pathHop(t, gw, er.epoch, &sphinx.Recipient{ID: mb})}, nil, []byte("forged"))
	attacker.send(gw.id, oneHop)
	waitFor(t, 10*time.Second, "the one-hop packet to be dropped", func() bool {
		return dropped(t, gwNode, dropFirstHop) == 1
	})

	skip := packetTo(t, g, []sphinx.PathHop{
		pathHop(t, gw, er.epoch, &sphinx.NodeDelay{}),
		pathHop(t, gw, er.epoch, &sphinx.Recipient{ID: mb}),
	}, nil, []byte("no mixes"))
	attacker.send(gw.id, skip)
	waitFor(t, 10*time.Second, "the packet that skips the mixes to be dropped", func() bool {
		return dropped(t, gwNode, dropBadRoute) == 1
	})

	direct := packetTo(t, g, []sphinx.PathHop{pathHop(t, dst, er.epoch, &sphinx.Recipient{ID: mb})}, nil, []byte("direct"))
	if resp := attacker.do(&clientproto.Request{Op: clientproto.OpSend, FirstHop: dst.id, Packet: direct}); resp.Code != clientproto.CodeBadRequest {
		t.Fatalf("a packet for another provider as first hop: code %v, want bad request", resp.Code)
	}

	// A packet over the whole network still arrives.
	attacker.send(gw.id, packetTo(t, g, tn.forwardPath(gw, gw, time.Millisecond, &sphinx.Recipient{ID: mb}), nil, []byte("honest")))
	waitFor(t, 10*time.Second, "the full-path packet in the victim's mailbox", func() bool { return len(victim.fetchOwn()) == 1 })
	if got := victim.fetchOwn()[0]; !bytes.HasPrefix(got.Payload, []byte("honest")) {
		t.Fatalf("the victim's mailbox holds %q", got.Payload[:16])
	}
}

// A flood through full paths into one victim's mailbox: the mailbox
// stops at its quota, the rest is dropped and counted by reason, other
// clients' messages arrive meanwhile, and once the victim has acked its
// mail the mailbox takes messages again.
func TestAFloodFillsOnlyTheVictimsQuota(t *testing.T) {
	const quota, flood = 20, 60
	tn := newTestNet(t, netSpec{mixes: 2, providers: 2, layers: 2, mu: 200, tweak: func(c *config.Config) {
		c.Provider.MailboxMaxMessages = quota
	}})
	er := tn.route()
	gw, dst := er.providers[0], er.providers[1]
	gwNode, dstNode := tn.nodeByID(gw.id), tn.nodeByID(dst.id)
	g := gwNode.n.geo
	victim := dialClient(t, dstNode)
	others := []*protoClient{dialClient(t, dstNode), dialClient(t, dstNode), dialClient(t, dstNode)}
	attackers := []*protoClient{dialClient(t, gwNode), dialClient(t, gwNode)}
	honest := dialClient(t, gwNode)
	to := func(pub ed25519.PublicKey, body string) []byte {
		return packetTo(t, g, tn.forwardPath(gw, dst, time.Millisecond, &sphinx.Recipient{ID: clientproto.OwnMailbox(pub)}), nil, []byte(body))
	}

	for i := range flood {
		attackers[i%len(attackers)].send(gw.id, to(victim.pub, "flood"))
		if i%4 == 0 && i/4 < 5*len(others) {
			honest.send(gw.id, to(others[(i/4)%len(others)].pub, "for you"))
		}
	}
	waitFor(t, 30*time.Second, "every other client's messages, and the flood counted", func() bool {
		for _, o := range others {
			if len(o.fetchOwn()) != 5 {
				return false
			}
		}
		return dropped(t, dstNode, dropMailboxMsgs)+float64(len(victim.fetchOwn())) == flood
	})
	got := victim.fetchOwn()
	if len(got) != quota {
		t.Fatalf("the victim's mailbox holds %d messages, want its quota %d", len(got), quota)
	}
	if d := dropped(t, dstNode, dropMailboxMsgs); d != flood-quota {
		t.Fatalf("%v payloads dropped as mailbox_messages, want %d", d, flood-quota)
	}
	if d := dropped(t, dstNode, dropStorage); d != 0 {
		t.Fatalf("%v payloads dropped as storage", d)
	}

	ids := make([]uint64, len(got))
	for i, m := range got {
		ids[i] = m.ID
	}
	if resp := victim.do(&clientproto.Request{Op: clientproto.OpAck, IDs: ids}); resp.Code != clientproto.CodeOK {
		t.Fatal(resp.Err())
	}
	// A full mailbox is counted again at most once a second, so the sender
	// retransmits until it is stored, as a client without an ACK does.
	sent := time.Time{}
	waitFor(t, 20*time.Second, "a message for the victim once it acked", func() bool {
		msgs := victim.fetchOwn()
		if len(msgs) > 0 {
			return bytes.HasPrefix(msgs[0].Payload, []byte("after the ack"))
		}
		if time.Since(sent) > 500*time.Millisecond {
			honest.send(gw.id, to(victim.pub, "after the ack"))
			sent = time.Now()
		}
		return false
	})
}

// The byte quota counts what storage already holds: a mailbox filled up to
// provider.mailbox_max_mb (here by a large stored message) takes nothing
// more, and the drop is counted as mailbox_bytes.
func TestAMailboxFullOfBytesTakesNoMore(t *testing.T) {
	tn := newTestNet(t, netSpec{mixes: 2, providers: 1, layers: 2, mu: 200, tweak: func(c *config.Config) {
		c.Provider.MailboxMaxMB = 1
	}})
	er := tn.route()
	p := er.providers[0]
	pn := tn.nodeByID(p.id)
	c := dialClient(t, pn)
	mb := clientproto.OwnMailbox(c.pub)
	big := (&clientproto.StoredMessage{Payload: make([]byte, 1<<20-1024)}).AppendTo(nil)
	if _, err := pn.store.AppendMailbox(context.Background(), &interfaces.AppendMailboxRequest{
		Messages: []interfaces.MailboxMessage{{Mailbox: mb, Payload: big, Lifetime: time.Hour}},
	}); err != nil {
		t.Fatal(err)
	}
	c.send(p.id, packetTo(t, pn.n.geo, tn.forwardPath(p, p, time.Millisecond, &sphinx.Recipient{ID: mb}), nil, []byte("one too many")))
	waitFor(t, 10*time.Second, "the payload to be dropped as mailbox_bytes", func() bool {
		return dropped(t, pn, dropMailboxBytes) == 1
	})
	if got := c.fetchOwn(); len(got) != 1 {
		t.Fatalf("the mailbox holds %d messages, want the one stored before", len(got))
	}
}

// A forward packet may carry a SURB for its ACK; the provider sends the
// ACK only through a SURB that starts at a layer-0 mix, as the client
// protocol's Send demands of a reply's first hop. The message itself is
// stored either way.
func TestASURBACKMustStartAtALayerZeroMix(t *testing.T) {
	tn := newTestNet(t, netSpec{mixes: 2, providers: 2, layers: 2, mu: 200})
	er := tn.route()
	gw, dst := er.providers[0], er.providers[1]
	gwNode, dstNode := tn.nodeByID(gw.id), tn.nodeByID(dst.id)
	g := gwNode.n.geo
	c := dialClient(t, gwNode)
	for i, tt := range []struct {
		name  string
		first []sphinx.PathHop // the SURB's hops before the gateway
	}{
		{"a SURB that starts at layer 1", []sphinx.PathHop{pathHop(t, er.layers[1][0], er.epoch, &sphinx.NodeDelay{})}},
		{"a SURB that starts at the destination provider", []sphinx.PathHop{
			pathHop(t, dst, er.epoch, &sphinx.NodeDelay{}),
			pathHop(t, er.layers[0][0], er.epoch, &sphinx.NodeDelay{}),
			pathHop(t, er.layers[1][0], er.epoch, &sphinx.NodeDelay{}),
		}},
	} {
		t.Run(tt.name+" gets no ACK", func(t *testing.T) {
			var ackBox [32]byte
			rand.Read(ackBox[:])
			path := append(tt.first, pathHop(t, gw, er.epoch, &sphinx.SURBReply{ID: [16]byte{byte(i)}}, &sphinx.Recipient{ID: ackBox}))
			surb, _, err := sphinx.NewSURB(rand.Reader, g, path)
			if err != nil {
				t.Fatal(err)
			}
			var mb [32]byte
			rand.Read(mb[:])
			c.send(gw.id, packetTo(t, g, tn.forwardPath(gw, dst, time.Millisecond, &sphinx.Recipient{ID: mb}), surb, []byte("with a bad SURB")))
			waitFor(t, 10*time.Second, "the message stored and its ACK refused", func() bool {
				return len(fetchAll(t, dstNode.store, mb)) == 1 && dropped(t, dstNode, dropAckRoute) == float64(i+1)
			})
			if n := len(fetchAll(t, gwNode.store, ackBox)); n != 0 {
				t.Fatalf("%d ACKs stored", n)
			}
		})
	}
}

// An admitted node that skips the mixes (here a first-layer mix handing a
// packet whose only hop is the victim's provider straight to it) gets
// nothing stored: a provider takes final hops only from last-layer mixes.
// A packet that crossed every layer still arrives.
func TestAFinalHopFromANodeOtherThanTheLastLayerIsRefused(t *testing.T) {
	tn := newTestNet(t, netSpec{mixes: 2, providers: 2, layers: 2, mu: 200})
	er := tn.route()
	dstHop := er.providers[1]
	dst := tn.nodeByID(dstHop.id)
	skipper := tn.nodeByID(er.layers[0][0].id).n.Host()
	g := dst.n.geo
	var mailbox [32]byte
	rand.Read(mailbox[:])
	payload, err := clientproto.PackForward(g, nil, []byte("skipped the mixes"))
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := sphinx.NewPacket(rand.Reader, g, []sphinx.PathHop{pathHop(t, dstHop, uint64(tn.route().epoch), &sphinx.Recipient{ID: mailbox})}, payload)
	if err != nil {
		t.Fatal(err)
	}
	before := value(t, dst.n.m.drop[dropNotLastLayer])
	writeMix(t, skipper, dst.n.Host().ID(), frame(pkt))
	waitFor(t, 10*time.Second, "the skipping packet to be dropped as not_last_layer", func() bool {
		return value(t, dst.n.m.drop[dropNotLastLayer]) >= before+1
	})
	if got := len(fetchAll(t, dst.store, mailbox)); got != 0 {
		t.Fatalf("%d messages stored from a node that skipped the mixes", got)
	}
	deliverOne(t, tn, 10*time.Second)
}
