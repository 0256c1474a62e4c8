package pkigossip

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/sottonet/sotto/interfaces"
)

func bareHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// attacker is a gossipsub peer on the PKI topic that validates nothing and
// publishes whatever it is told to.
type attacker struct {
	topic *pubsub.Topic
}

func newAttacker(t *testing.T, cfg Config, target *Member) *attacker {
	t.Helper()
	h := bareHost(t)
	ps, err := pubsub.NewGossipSub(t.Context(), h,
		pubsub.WithPeerOutboundQueueSize(queueSize), // a flood of hundreds, not dropped at its source
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMaxMessageSize(1<<20),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { s := sha256.Sum256(m.Data); return string(s[:]) }))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(cfg.topic())
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Cancel)
	if err := h.Connect(t.Context(), peer.AddrInfo{ID: target.Host().ID(), Addrs: target.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	// Messages sent right after the subscription exchange can be lost
	// while pubsub opens its streams (gossip never promises delivery; the
	// members' anti-entropy heals it, but an attacker serves none). Probe
	// with an out-of-window descriptor, which members ignore, until one
	// arrives.
	probe := newNode(999, interfaces.RoleMix).descriptor(t, cfg.Network, target.Clock().Now()+cfg.Ahead+10, 0)
	before := target.Stats().Ignored
	for deadline := time.Now().Add(10 * time.Second); target.Stats().Ignored == before; {
		if time.Now().After(deadline) {
			t.Fatal("the attacker's messages never reach the member")
		}
		probe = newNode(999, interfaces.RoleMix).descriptor(t, cfg.Network, probe.Descriptor.Epoch+1, 0)
		_ = topic.Publish(t.Context(), msgOf(probe))
		time.Sleep(100 * time.Millisecond)
	}
	return &attacker{topic: topic}
}

func (a *attacker) send(t *testing.T, data []byte) {
	t.Helper()
	if err := a.topic.Publish(t.Context(), data); err != nil {
		t.Fatalf("attacker publish: %v", err)
	}
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool, members ...*Member) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); {
		if time.Now().After(deadline) {
			for i, m := range members {
				t.Logf("member %d: %+v", i, m.Stats())
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func docNodes(m *Member, e uint64) [][]byte {
	r, err := m.Document(context.Background(), &interfaces.DocumentRequest{Epoch: e})
	if err != nil {
		return nil
	}
	var out [][]byte
	for _, n := range r.Document.Nodes {
		out = append(out, n.Raw)
	}
	return out
}

func TestBadMessagesAreRejectedAndNoMemberCrashes(t *testing.T) {
	period := time.Minute
	cfg := testConfig(time.Now().Add(-70*time.Second), period) // 10s into epoch 1
	members := startMembers(t, 3, cfg, 4)
	cur := members[0].Clock().Now()
	e := cur + 1
	att := newAttacker(t, cfg, members[0])
	base := members[0].Stats()

	n := newNode(100, interfaces.RoleMix)
	good := n.descriptor(t, "testnet", e, 0)
	forged := bytes.Clone(good.Raw)
	forged[len(forged)-10] ^= 1
	rng := rand.New(rand.NewPCG(5, 5))
	garbage := make([]byte, 300)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	oversized := append(msgOf(good), make([]byte, maxMessageLen)...)
	tests := []struct {
		name   string
		data   []byte
		reject bool // true: rejected (peer penalised); false: ignored
	}{
		{"random bytes", garbage, true},
		{"a bare descriptor, as the version 1 topic carried", good.Raw, true},
		{"a forged signature", encodeMessage(kindNone, forged, nil), true},
		{"a truncated descriptor", encodeMessage(kindNone, good.Raw[:len(good.Raw)/2], nil), true},
		{"an oversized message", oversized, true},
		{"a descriptor for another network", msgOf(newNode(101, interfaces.RoleMix).descriptor(t, "othernet", e, 0)), true},
		{"a proof under another policy's kind", encodeMessage(kindEndorsed, newNode(104, interfaces.RoleMix).descriptor(t, "testnet", e, 0).Raw, []byte{0}), true},
		{"a proof where the policy wants none", encodeMessage(kindNone, newNode(105, interfaces.RoleMix).descriptor(t, "testnet", e, 0).Raw, []byte{1}), true},
		{"an expired descriptor", msgOf(newNode(102, interfaces.RoleMix).descriptor(t, "testnet", cur-1, 0)), false},
		{"a descriptor too far in the future", msgOf(newNode(103, interfaces.RoleMix).descriptor(t, "testnet", cur+5, 0)), false},
		{"an empty message", []byte{}, true},
		// Signed by its identity, but naming a 1-byte peer ID: admitted,
		// it made every node refuse the whole document of its epoch.
		{"a signed descriptor whose peer ID is not its identity's", encodeMessage(kindNone, badPeerIDDescriptor(newNode(106, interfaces.RoleMix), "testnet", e), nil), true},
	}
	// The hand-made descriptor fails for its peer ID alone, not for a
	// slip in its encoding.
	if _, err := interfaces.ParseSignedDescriptor(badPeerIDDescriptor(newNode(106, interfaces.RoleMix), "testnet", e)); err == nil || !strings.Contains(err.Error(), "peer ID is not") {
		t.Fatalf("the bad-peer-ID descriptor parses as %v", err)
	}
	for _, tt := range tests {
		att.send(t, tt.data)
	}
	// A valid marker sent last: once every member holds it, every earlier
	// message has been judged by member 0.
	att.send(t, msgOf(good))
	waitFor(t, "the marker to reach every member", 15*time.Second, func() bool {
		for _, m := range members {
			if len(docNodes(m, e)) != 1 {
				return false
			}
		}
		return true
	}, members...)
	for i, m := range members {
		if got := docNodes(m, e); !bytes.Equal(got[0], good.Raw) {
			t.Fatalf("member %d holds something other than the marker", i)
		}
		for _, other := range []uint64{cur - 1, cur + 5} {
			if len(docNodes(m, other)) != 0 {
				t.Fatalf("member %d stored a descriptor for out-of-window epoch %d", i, other)
			}
		}
	}
	st := members[0].Stats()
	wantRejected, wantIgnored := 0, 0
	for _, tt := range tests {
		if tt.reject {
			wantRejected++
		} else {
			wantIgnored++
		}
	}
	st.Rejected -= base.Rejected
	st.Ignored -= base.Ignored
	if st.Rejected < uint64(wantRejected) || st.Ignored < uint64(wantIgnored) {
		t.Fatalf("member 0 rejected %d, ignored %d; want at least %d and %d", st.Rejected, st.Ignored, wantRejected, wantIgnored)
	}
	// Nothing bad was forwarded: the others rejected nothing.
	for i, m := range members[1:] {
		if r := m.Stats().Rejected; r != 0 {
			t.Fatalf("member %d saw %d bad messages: member 0 forwarded them", i+1, r)
		}
	}
}

func TestEquivocatorIsReportedEverywhereAndExcluded(t *testing.T) {
	cfg := testConfig(time.Now(), time.Minute)
	members := startMembers(t, 4, cfg, 6)
	e := members[0].Clock().Now() + 1
	honest := newNode(200, interfaces.RoleProvider).descriptor(t, "testnet", e, 0)
	liar := newNode(201, interfaces.RoleMix)
	a, b := liar.descriptor(t, "testnet", e, 0), liar.descriptor(t, "testnet", e, 1)
	if _, err := members[1].Publish(t.Context(), &interfaces.PublishRequest{Descriptor: honest}); err != nil {
		t.Fatal(err)
	}
	// Two faces, shown to two members at once, as a real equivocator would.
	att0, att3 := newAttacker(t, cfg, members[0]), newAttacker(t, cfg, members[3])
	att0.send(t, msgOf(a))
	att3.send(t, msgOf(b))
	waitFor(t, "every member to hold the evidence", 15*time.Second, func() bool {
		for _, m := range members {
			ev, _ := m.Evidence(t.Context(), &interfaces.EvidenceRequest{Epoch: e})
			if len(ev.Equivocations) != 1 {
				return false
			}
		}
		return true
	})
	hash, _ := waitConverged(t, members, e, 1, 10*time.Second)
	for i, m := range members {
		ev, _ := m.Evidence(t.Context(), &interfaces.EvidenceRequest{Epoch: e})
		if err := ev.Equivocations[0].Verify(); err != nil {
			t.Fatalf("member %d evidence: %v", i, err)
		}
		r, _ := m.Document(t.Context(), &interfaces.DocumentRequest{Epoch: e})
		if r.Hash != hash || !bytes.Equal(r.Document.Nodes[0].Raw, honest.Raw) {
			t.Fatalf("member %d document holds the equivocator", i)
		}
	}
	if _, err := members[2].Publish(t.Context(), &interfaces.PublishRequest{Descriptor: a}); err == nil {
		t.Fatal("an excluded identity could publish again")
	}
}

func TestRestartedMemberRecoversTheDocument(t *testing.T) {
	cfg := testConfig(time.Now(), time.Minute)
	members := startMembers(t, 3, cfg, 7)
	e := members[0].Clock().Now() + 1
	nodes := rolesFor(3)
	publishAll(t, members, nodes, e, 0)
	want, _ := waitConverged(t, members, e, 3, 15*time.Second)

	t.Run("from its own persisted state, with no peer reachable", func(t *testing.T) {
		c := cfg
		c.StateDir = t.TempDir()
		m, err := New(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range members[0].store.messages(e) {
			if _, err := m.ingest(t.Context(), r, ""); err != nil {
				t.Fatal(err)
			}
		}
		m.Close()
		again, err := New(t.Context(), c) // no bootstrap: only the disk
		if err != nil {
			t.Fatal(err)
		}
		defer again.Close()
		r, err := again.Document(t.Context(), &interfaces.DocumentRequest{Epoch: e})
		if err != nil || r.Hash != want {
			t.Fatalf("after restart: err %v, hash match %v", err, err == nil && r.Hash == want)
		}
	})
	t.Run("from a peer, with no state of its own", func(t *testing.T) {
		members[2].Close()
		c := cfg
		c.Bootstrap = members[0].Addrs()
		m, err := New(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		r, err := m.Document(t.Context(), &interfaces.DocumentRequest{Epoch: e})
		if err != nil || r.Hash != want {
			t.Fatalf("fresh member: err %v", err)
		}
	})
}

func TestClientFetchesTheDocumentFromAnyMember(t *testing.T) {
	cfg := testConfig(time.Now(), time.Minute)
	members := startMembers(t, 3, cfg, 8)
	e := members[0].Clock().Now() + 1
	publishAll(t, members, rolesFor(3), e, 0)
	want, _ := waitConverged(t, members, e, 3, 15*time.Second)
	client := bareHost(t)
	for i, m := range members {
		if err := client.Connect(t.Context(), peer.AddrInfo{ID: m.Host().ID(), Addrs: m.Host().Addrs()}); err != nil {
			t.Fatal(err)
		}
		doc, h, err := FetchDocument(t.Context(), client, m.Host().ID(), e)
		if err != nil || h != want || len(doc.Nodes) != 3 {
			t.Fatalf("member %d: err %v", i, err)
		}
	}
	if _, _, err := FetchDocument(t.Context(), client, members[0].Host().ID(), e+50); err == nil {
		t.Fatal("a document for an unknown epoch was served")
	}
}

func FuzzReadState(f *testing.F) {
	n := newNode(1, interfaces.RoleMix)
	msg := msgOf(n.descriptor(f, "testnet", 1, 0))
	var seed []byte
	seed = append(seed, 0, 0, 0, 1, byte(len(msg)>>8), byte(len(msg)))
	seed = append(seed, msg...)
	f.Add(seed)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := readState(bytes.NewReader(b), maxMessageLen)
		if err != nil {
			return
		}
		for _, m := range msgs {
			if len(m) > maxMessageLen {
				t.Fatal("oversized message passed")
			}
			if _, desc, _, err := parseMessage(m); err == nil {
				_, _ = interfaces.ParseSignedDescriptor(desc)
			}
		}
	})
}

// badPeerIDDescriptor encodes and signs, by hand (SignDescriptor refuses
// it), a descriptor whose peer ID is one byte: docs/SPEC.md, "Encodings".
func badPeerIDDescriptor(n node, network string, e uint64) []byte {
	id := n.key.Public().(ed25519.PublicKey)
	var b []byte
	b = append(b, 1, byte(len(network)))
	b = append(b, network...)
	b = binary.BigEndian.AppendUint64(b, e)
	b = append(b, id...)
	b = append(b, 1, 0x42)                  // peer ID: bytes8 of one byte
	b = append(b, 1, 0, 5, 4, 127, 0, 0, 1) // one address: /ip4/127.0.0.1
	b = append(b, byte(n.role))
	b = append(b, make([]byte, 3*32)...) // Sphinx keys
	b = append(b, 0, 0)                  // no accounting info
	return append(b, ed25519.Sign(n.key, append([]byte("sotto pki descriptor v1\x00"), b...))...)
}
