package pkigossip

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
)

func testParams(period time.Duration) interfaces.NetworkParams {
	return interfaces.NetworkParams{Hops: 3, PayloadLen: 2048, Layers: 3, Mu: 2, LambdaP: 1, LambdaL: 0.5, LambdaD: 0.5, LambdaM: 0.25, EpochPeriod: period}
}

func testConfig(genesis time.Time, period time.Duration) Config {
	return Config{
		Network:      "testnet",
		Listen:       []string{"/ip4/127.0.0.1/tcp/0"},
		Genesis:      genesis,
		EpochPeriod:  period,
		Params:       testParams(period),
		SyncInterval: 300 * time.Millisecond,
	}
}

// node is a test node's signing identity.
type node struct {
	key  ed25519.PrivateKey
	role interfaces.Role
}

func newNode(seed uint64, role interfaces.Role) node {
	s := sha256.Sum256(fmt.Appendf(nil, "node %d", seed))
	return node{key: ed25519.NewKeyFromSeed(s[:]), role: role}
}

// descriptor signs a descriptor for epoch e; rot changes its Sphinx keys.
func (n node) descriptor(t testing.TB, network string, e uint64, rot byte) *interfaces.SignedDescriptor {
	t.Helper()
	id := n.key.Public().(ed25519.PublicKey)
	d := &interfaces.Descriptor{
		Network: network, Epoch: e, Identity: id,
		PeerID: interfaces.PeerIDOf(id),
		Addrs:  [][]byte{{0x04, 127, 0, 0, 1, 0x06, 0x1f, 0x90}},
		Role:   n.role,
	}
	for i := range d.SphinxKeys {
		d.SphinxKeys[i] = sha256.Sum256(append(bytes.Clone(id), byte(e), byte(i), rot))
	}
	sd, err := interfaces.SignDescriptor(d, n.key)
	if err != nil {
		t.Fatal(err)
	}
	return sd
}

// msgOf is sd's gossip message under admission policy none.
func msgOf(sd *interfaces.SignedDescriptor) []byte { return encodeMessage(kindNone, sd.Raw, nil) }

// startMembers starts n members; each dials up to three random earlier ones.
func startMembers(t testing.TB, n int, cfg Config, seed uint64) []*Member {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	members := make([]*Member, 0, n)
	for i := range n {
		c := cfg
		c.Bootstrap = nil
		for j := range min(i, 3) {
			_ = j
			c.Bootstrap = append(c.Bootstrap, members[rng.IntN(i)].Addrs()...)
		}
		m, err := New(t.Context(), c)
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		t.Cleanup(func() { m.Close() })
		members = append(members, m)
	}
	return members
}

// waitConverged polls until every member's document for e has want nodes
// and all hashes agree, and returns the hash and how long it took.
func waitConverged(t testing.TB, members []*Member, e uint64, want int, limit time.Duration) ([32]byte, time.Duration) {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < limit {
		var first [32]byte
		ok := true
		for i, m := range members {
			r, err := m.Document(context.Background(), &interfaces.DocumentRequest{Epoch: e})
			if err != nil {
				ok, last = false, fmt.Sprintf("member %d: %v", i, err)
				break
			}
			if len(r.Document.Nodes) != want {
				ok, last = false, fmt.Sprintf("member %d holds %d of %d", i, len(r.Document.Nodes), want)
				break
			}
			if i == 0 {
				first = r.Hash
			} else if r.Hash != first {
				ok, last = false, fmt.Sprintf("member %d hash differs", i)
				break
			}
		}
		if ok {
			return first, time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no convergence on epoch %d within %v: %s", e, limit, last)
	return [32]byte{}, 0
}

func publishAll(t testing.TB, members []*Member, nodes []node, e uint64, rot byte) {
	t.Helper()
	for i, m := range members {
		sd := nodes[i].descriptor(t, "testnet", e, rot)
		if _, err := m.Publish(t.Context(), &interfaces.PublishRequest{Descriptor: sd}); err != nil {
			t.Fatalf("member %d publish: %v", i, err)
		}
	}
}

func rolesFor(n int) []node {
	nodes := make([]node, n)
	for i := range nodes {
		role := interfaces.RoleMix
		if i%5 == 0 {
			role = interfaces.RoleProvider
		}
		nodes[i] = newNode(uint64(i), role)
	}
	return nodes
}

func TestTwentyMembersConvergeAndAgainAfterRotation(t *testing.T) {
	const n = 20
	// Epochs long enough that no epoch this test waits on leaves the
	// window while a loaded machine is slow to converge (with 4 s epochs a
	// 20 s wait could outlast them), and genesis placed so that epoch e1
	// starts 6 s in: the rotation below still crosses an epoch boundary
	// without the test waiting out a whole period.
	period := 30 * time.Second
	cfg := testConfig(time.Now().Add(-(period - 6*time.Second)), period)
	members := startMembers(t, n, cfg, 1)
	nodes := rolesFor(n)
	clock := members[0].Clock()

	e1 := clock.Now() + 1
	publishAll(t, members, nodes, e1, 0)
	h1, took := waitConverged(t, members, e1, n, 20*time.Second)
	t.Logf("epoch %d: %d members converged in %v", e1, n, took)

	// Rotate: wait until e1 is current, then every node publishes fresh
	// Sphinx keys for the next epoch.
	time.Sleep(time.Until(clock.Start(e1)))
	e2 := e1 + 1
	publishAll(t, members, nodes, e2, 1)
	h2, took := waitConverged(t, members, e2, n, 20*time.Second)
	t.Logf("epoch %d after rotation: converged in %v", e2, took)
	if h1 == h2 {
		t.Fatal("documents of two epochs have the same hash")
	}
	r1, _ := members[0].Document(t.Context(), &interfaces.DocumentRequest{Epoch: e2})
	r2, _ := members[n-1].Document(t.Context(), &interfaces.DocumentRequest{Epoch: e2})
	l1, l2 := r1.Document.Layers(), r2.Document.Layers()
	for i := range l1 {
		for j := range l1[i] {
			if !bytes.Equal(l1[i][j].Raw, l2[i][j].Raw) {
				t.Fatal("two members assign layers differently")
			}
		}
	}
}

func TestDocumentBeforeAnyDescriptorIsNotFound(t *testing.T) {
	m := startMembers(t, 1, testConfig(time.Now(), time.Minute), 2)[0]
	_, err := m.Document(t.Context(), &interfaces.DocumentRequest{Epoch: 1})
	if !errors.Is(err, interfaces.ErrNotFound) {
		t.Fatalf("error = %v, want ErrNotFound", err)
	}
}
