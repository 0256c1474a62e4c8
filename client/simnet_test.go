package client

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/pkidoc"
	"github.com/sottonet/sotto/core/sphinx"
)

// simNet is an in-process Sotto network for tests: real Sphinx keys and
// a real PKI document; every node unwraps each packet with sphinx, checks
// replays, holds it for the NodeDelay its sender chose, and forwards it
// to the NextNodeHop; a provider at the final hop does what a provider
// does (docs/SPEC.md, "Client protocol"): stores forward bodies and SURB
// replies as clientproto.StoredMessage, discards drop decoys, and answers a
// carried SURB with an all-zero ACK at once. It runs on time.Now and
// time.AfterFunc, so inside testing/synctest it runs in virtual time.
type simNet struct {
	t       testing.TB
	g       *sphinx.Geometry
	clock   epoch.Clock
	params  pkidoc.NetworkParams
	network string
	docs    map[uint64][]byte
	doc     *pkidoc.Document
	nodes   map[[32]byte]*simNode
	layers  [][][32]byte          // of the first epoch
	layer0  map[uint64][][32]byte // layer 0 of each epoch with a document
	provs   [][32]byte

	mu       sync.Mutex
	dropping map[[32]byte]bool
	closed   bool
	counts   map[string]int
}

type simNode struct {
	id       [32]byte
	provider bool
	keys     map[uint64]*sphinx.PrivateKey
	replay   map[[32]byte]bool
	boxes    map[clientproto.MailboxID][]simEntry
	nextID   uint64
}

type simEntry struct {
	id      uint64
	expires time.Time
	raw     []byte // the StoredMessage encoding
}

func testParams() pkidoc.NetworkParams {
	return pkidoc.NetworkParams{Hops: 3, PayloadLen: 512, Layers: 3, Mu: 20,
		LambdaP: 4, LambdaL: 2, LambdaD: 1, LambdaM: 1, EpochPeriod: time.Hour}
}

// newSimNet builds a network of mixesPerLayer × params.Layers mixes and
// two providers, with documents for the current epoch and the next.
func newSimNet(t testing.TB, mixesPerLayer int, params pkidoc.NetworkParams) *simNet {
	t.Helper()
	g, err := sphinx.NewGeometry(int(params.PayloadLen), int(params.Hops)+2, true)
	if err != nil {
		t.Fatal(err)
	}
	period := params.EpochPeriod
	clock, err := epoch.New(time.Now().Add(-10*period-time.Minute), period, period/10)
	if err != nil {
		t.Fatal(err)
	}
	// The documents state the clock, as the gossip PKI's do.
	params.Genesis, params.EpochGrace = clock.Genesis(), clock.Grace()
	n := &simNet{t: t, g: g, clock: clock, params: params, network: "simnet", docs: map[uint64][]byte{}, layer0: map[uint64][][32]byte{},
		nodes: map[[32]byte]*simNode{}, dropping: map[[32]byte]bool{}, counts: map[string]int{}}
	e := clock.Now()
	type member struct {
		key  ed25519.PrivateKey
		node *simNode
		role pkidoc.Role
	}
	var members []member
	add := func(role pkidoc.Role) {
		pub, key, err := ed25519.GenerateKey(crand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		nd := &simNode{id: [32]byte(pub), provider: role == pkidoc.RoleProvider, keys: map[uint64]*sphinx.PrivateKey{},
			replay: map[[32]byte]bool{}, boxes: map[clientproto.MailboxID][]simEntry{}}
		for i := range uint64(pkidoc.SphinxKeyEpochs + 1) {
			k, err := sphinx.GenerateKey(crand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			nd.keys[e+i] = k
		}
		n.nodes[nd.id] = nd
		members = append(members, member{key, nd, role})
		if nd.provider {
			n.provs = append(n.provs, nd.id)
		}
	}
	for range mixesPerLayer * int(params.Layers) {
		add(pkidoc.RoleMix)
	}
	add(pkidoc.RoleProvider)
	add(pkidoc.RoleProvider)
	for _, de := range []uint64{e, e + 1} {
		var sds []*pkidoc.SignedDescriptor
		for _, m := range members {
			d := &pkidoc.Descriptor{Network: n.network, Epoch: de, Identity: m.key.Public().(ed25519.PublicKey),
				PeerID: pkidoc.PeerIDOf(m.key.Public().(ed25519.PublicKey)), Addrs: [][]byte{{4, 127, 0, 0, 1}}, Role: m.role}
			for i := range d.SphinxKeys {
				if k, ok := m.node.keys[de+uint64(i)]; ok {
					copy(d.SphinxKeys[i][:], k.PublicKey().Bytes())
				}
			}
			sd, err := pkidoc.SignDescriptor(d, m.key)
			if err != nil {
				t.Fatal(err)
			}
			sds = append(sds, sd)
		}
		doc, err := pkidoc.NewDocument(n.network, de, params, sds)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := doc.Encode()
		if err != nil {
			t.Fatal(err)
		}
		n.docs[de] = raw
		for _, sd := range doc.Layers()[0] {
			n.layer0[de] = append(n.layer0[de], [32]byte(sd.Descriptor.Identity))
		}
		if de == e {
			n.doc = doc
			for _, layer := range doc.Layers() {
				var ids [][32]byte
				for _, sd := range layer {
					ids = append(ids, [32]byte(sd.Descriptor.Identity))
				}
				n.layers = append(n.layers, ids)
			}
		}
	}
	return n
}

// withhold makes the providers serve, for epoch e, a document without the
// node id (as a member does before id's descriptor has gossiped in), and
// returns the func that serves the whole document again.
func (n *simNet) withhold(e uint64, id [32]byte) (restore func()) {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	full := n.docs[e]
	doc, err := pkidoc.ParseDocument(full)
	if err != nil {
		n.t.Fatal(err)
	}
	var rest []*pkidoc.SignedDescriptor
	for _, sd := range doc.Nodes {
		if [32]byte(sd.Descriptor.Identity) != id {
			rest = append(rest, sd)
		}
	}
	partial, err := pkidoc.NewDocument(doc.Network, e, doc.Params, rest)
	if err != nil {
		n.t.Fatal(err)
	}
	raw, err := partial.Encode()
	if err != nil {
		n.t.Fatal(err)
	}
	n.docs[e] = raw
	return func() {
		n.mu.Lock()
		n.docs[e] = full
		n.mu.Unlock()
	}
}

// dropAll makes a node silently discard every packet it receives.
func (n *simNet) dropAll(id [32]byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dropping[id] = true
}

// revive makes a dropping node work again.
func (n *simNet) revive(id [32]byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.dropping, id)
}

func (n *simNet) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
}

func (n *simNet) count(what string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.counts[what]
}

func (n *simNet) inc(what string) {
	n.mu.Lock()
	n.counts[what]++
	n.mu.Unlock()
}

// deliver hands pkt to node to, which processes it as a node would.
func (n *simNet) deliver(to [32]byte, pkt []byte) {
	nd, ok := n.nodes[to]
	n.mu.Lock()
	closed, dropping := n.closed, n.dropping[to]
	n.mu.Unlock()
	switch {
	case closed:
		return
	case !ok:
		n.inc("unknown node")
		return
	case dropping:
		n.inc("dropped by " + fmt.Sprintf("%x", to[:4]))
		return
	}
	now := time.Now()
	var (
		res *sphinx.Result
		buf []byte
		err error
	)
	for _, e := range []uint64{n.clock.At(now), n.clock.At(now) - 1} {
		k, ok := nd.keys[e]
		if !ok || !n.clock.KeyValid(e, now) {
			continue
		}
		buf = slices.Clone(pkt) // Unwrap works in place
		if res, err = sphinx.Unwrap(n.g, k, buf); err == nil {
			break
		}
	}
	if res == nil || err != nil {
		n.inc("invalid")
		n.t.Logf("node %x refused a packet: %v", to[:4], err)
		return
	}
	n.mu.Lock()
	replayed := nd.replay[res.ReplayTag]
	nd.replay[res.ReplayTag] = true
	n.mu.Unlock()
	if replayed {
		n.inc("replay")
		return
	}
	if next := res.Commands.NextHop; next != nil {
		var delay time.Duration
		for _, c := range res.Commands.List {
			if d, ok := c.(*sphinx.NodeDelay); ok {
				delay = time.Duration(d.Delay) * time.Millisecond
			}
		}
		id := next.ID
		time.AfterFunc(delay, func() { n.deliver(id, buf) })
		return
	}
	if !nd.provider {
		n.inc("final hop at a mix")
		return
	}
	n.final(nd, res)
}

// final is a provider's final-hop delivery.
func (n *simNet) final(nd *simNode, res *sphinx.Result) {
	var (
		recipient *sphinx.Recipient
		delivery  *sphinx.MailboxDelivery
	)
	for _, c := range res.Commands.List {
		switch c := c.(type) {
		case *sphinx.Recipient:
			recipient = c
		case *sphinx.MailboxDelivery:
			delivery = c
		}
	}
	lifetime := clientproto.DefaultLifetime
	var box clientproto.MailboxID
	switch {
	case delivery != nil:
		box = clientproto.SURBMailbox(delivery.Mailbox)
		if delivery.Lifetime != 0 {
			lifetime = time.Duration(delivery.Lifetime) * time.Second
		}
	case recipient != nil:
		box = recipient.ID
	default:
		n.inc("no recipient")
		return
	}
	if sr := res.Commands.SURBReply; sr != nil {
		n.store(nd, box, &clientproto.StoredMessage{Reply: true, SURBID: sr.ID, Payload: res.Payload}, lifetime)
		n.inc("reply stored")
		return
	}
	if box == clientproto.DropRecipient {
		n.inc("drop")
		return
	}
	surb, body, err := clientproto.SplitForward(n.g, res.Payload)
	if err != nil {
		n.inc("bad forward payload")
		return
	}
	n.store(nd, box, &clientproto.StoredMessage{Payload: body}, lifetime)
	n.inc("forward stored")
	if surb != nil {
		ack, first, err := sphinx.NewPacketFromSURB(n.g, surb, make([]byte, n.g.ForwardPayloadLength))
		if err != nil {
			n.inc("bad SURB")
			return
		}
		n.inc("ack sent")
		time.AfterFunc(0, func() { n.deliver(first, ack) })
	}
}

func (n *simNet) store(nd *simNode, box clientproto.MailboxID, m *clientproto.StoredMessage, lifetime time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nd.nextID++
	nd.boxes[box] = append(nd.boxes[box], simEntry{id: nd.nextID, expires: time.Now().Add(lifetime), raw: m.AppendTo(nil)})
}

// simProvider is one client's link to its provider on a simNet. With
// capture set it records what the client sends instead of routing it.
type simProvider struct {
	net    *simNet
	home   [32]byte
	client ed25519.PublicKey

	mu         sync.Mutex
	capture    bool
	refuseNext int // refuse this many Sends, as a busy provider does
	sent       []sentPacket
	down       bool  // every call fails as if the provider were unreachable
	docErr     error // Document fails with it
	failAcks   bool  // Ack fails (the entries stay)
	calls      map[string]int
}

var errSimDown = errors.New("sim: provider unreachable")

// call counts a call and fails it while the provider is down.
func (p *simProvider) call(op string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls == nil {
		p.calls = map[string]int{}
	}
	p.calls[op]++
	if pushAll && op == "fetch" {
		p.net.t.Errorf("a client with the pushed downstream polled its mailbox")
	}
	if p.down {
		return errSimDown
	}
	return nil
}

func (p *simProvider) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

func (p *simProvider) count(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[op]
}

type sentPacket struct {
	at       time.Time
	firstHop [32]byte
	size     int
}

func (p *simProvider) Document(ctx context.Context, e uint64) ([]byte, error) {
	if err := p.call("document"); err != nil {
		return nil, err
	}
	p.mu.Lock()
	docErr := p.docErr
	p.mu.Unlock()
	if docErr != nil {
		return nil, docErr
	}
	if e == clientproto.CurrentEpoch {
		e = p.net.clock.Now()
	}
	p.net.mu.Lock()
	raw, ok := p.net.docs[e]
	p.net.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("sim: epoch %d: %w", e, clientproto.ErrNoDocument)
	}
	return raw, nil
}

func (p *simProvider) Send(ctx context.Context, firstHop [32]byte, pkt []byte) error {
	if err := p.call("send"); err != nil {
		return err
	}
	if len(pkt) != p.net.g.PacketLength {
		return fmt.Errorf("sim: packet of %d bytes", len(pkt))
	}
	p.mu.Lock()
	if p.refuseNext > 0 {
		p.refuseNext--
		p.mu.Unlock()
		return fmt.Errorf("sim: %w", clientproto.ErrBusy)
	}
	p.sent = append(p.sent, sentPacket{time.Now(), firstHop, len(pkt)})
	capture := p.capture
	p.mu.Unlock()
	if capture {
		return nil
	}
	// As a provider does (host/node Forward): a reply's first hop must be
	// in layer 0 of the current epoch's document.
	if firstHop != p.home && !slices.Contains(p.net.layer0[p.net.clock.Now()], firstHop) {
		return fmt.Errorf("sim: first hop %x is neither the provider nor a layer-0 mix: %w", firstHop[:4], clientproto.ErrBadRequest)
	}
	p.net.deliver(firstHop, slices.Clone(pkt))
	return nil
}

func (p *simProvider) box(ref clientproto.MailboxRef) clientproto.MailboxID {
	if ref.SURB {
		return clientproto.SURBMailbox(ref.Capability)
	}
	return clientproto.OwnMailbox(p.client)
}

func (p *simProvider) Fetch(ctx context.Context, ref clientproto.MailboxRef, after uint64, limit int) ([]clientproto.Message, error) {
	if err := p.call("fetch"); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 16
	}
	n := p.net
	nd := n.nodes[p.home]
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []clientproto.Message
	now := time.Now()
	for _, e := range nd.boxes[p.box(ref)] {
		if e.id <= after || now.After(e.expires) {
			continue
		}
		sm, err := clientproto.ParseStored(slices.Clone(e.raw))
		if err != nil {
			return nil, err
		}
		out = append(out, clientproto.Message{ID: e.id, Expires: e.expires, StoredMessage: sm})
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

func (p *simProvider) Ack(ctx context.Context, ref clientproto.MailboxRef, ids []uint64) error {
	if err := p.call("ack"); err != nil {
		return err
	}
	p.mu.Lock()
	fail := p.failAcks
	p.mu.Unlock()
	if fail {
		return fmt.Errorf("sim: %w", clientproto.ErrInternal)
	}
	n := p.net
	nd := n.nodes[p.home]
	n.mu.Lock()
	defer n.mu.Unlock()
	b := p.box(ref)
	nd.boxes[b] = slices.DeleteFunc(nd.boxes[b], func(e simEntry) bool { return slices.Contains(ids, e.id) })
	return nil
}

func (p *simProvider) Close() error { return nil }

func (p *simProvider) packets() []sentPacket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent)
}

// duplicate stores every entry of a client's own mailbox once more, under
// new IDs, as a sender's retransmissions would.
func (p *simProvider) duplicate() {
	p.net.mu.Lock()
	defer p.net.mu.Unlock()
	nd := p.net.nodes[p.home]
	box := p.box(clientproto.MailboxRef{})
	for _, e := range slices.Clone(nd.boxes[box]) {
		nd.nextID++
		e.id = nd.nextID
		nd.boxes[box] = append(nd.boxes[box], e)
	}
}

// entryIDs lists the IDs of what waits in a client's own mailbox.
func (p *simProvider) entryIDs() []uint64 {
	p.net.mu.Lock()
	defer p.net.mu.Unlock()
	var ids []uint64
	for _, e := range p.net.nodes[p.home].boxes[p.box(clientproto.MailboxRef{})] {
		ids = append(ids, e.id)
	}
	return ids
}

// pending counts what waits in a client's own mailbox.
func (p *simProvider) pending() int {
	p.net.mu.Lock()
	defer p.net.mu.Unlock()
	return len(p.net.nodes[p.home].boxes[p.box(clientproto.MailboxRef{})])
}

// newClient makes a client homed on provider home (0 or 1) with a seeded
// random source.
func (n *simNet) newClient(t testing.TB, home int, seed uint64, mod func(*Config)) (*Client, *simProvider) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &simProvider{net: n, home: n.provs[home], client: pub}
	cfg := Config{
		Identity:      key,
		Provider:      p,
		ProviderID:    n.provs[home],
		Network:       n.network,
		Clock:         n.clock,
		Rand:          rand.New(rand.NewPCG(seed, seed^0x5eed)),
		Logger:        slog.New(slog.DiscardHandler),
		FetchInterval: 200 * time.Millisecond,
	}
	cfg.Provider = simLink(p)
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, p
}

// start runs c until the returned stop is called; stop waits for Run.
func start(t testing.TB, c *Client) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() {
		cancel()
		<-done
	}
}
