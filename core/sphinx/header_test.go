package sphinx

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/sottonet/sotto/core/sphinx/internal/aesctr"
	"github.com/sottonet/sotto/internal/vectors"

	"filippo.io/edwards25519"
)

// testRand is deterministic randomness for tests.
func testRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

type testNode struct {
	id   [NodeIDLength]byte
	priv *PrivateKey
}

func newTestNodes(t testing.TB, r io.Reader, n int) []testNode {
	t.Helper()
	nodes := make([]testNode, n)
	for i := range nodes {
		k, err := GenerateKey(r)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(r, nodes[i].id[:])
		nodes[i].priv = k
	}
	return nodes
}

// forwardPath routes through nodes with a NodeDelay each and, at the last
// hop, the given final commands.
func forwardPath(nodes []testNode, final ...Command) []PathHop {
	path := make([]PathHop, len(nodes))
	for i, nd := range nodes {
		path[i] = PathHop{ID: nd.id, PublicKey: nd.priv.PublicKey()}
		if i < len(nodes)-1 {
			path[i].Commands = []Command{&NodeDelay{Delay: uint32(100 * (i + 1))}}
		} else {
			path[i].Commands = final
		}
	}
	return path
}

// torsionKey returns a public key with a torsion component: [a]B plus a point
// of order 8, in Montgomery form.
func torsionKey(t testing.TB, seed byte) *PublicKey {
	t.Helper()
	var a edwards25519.Scalar
	var w [64]byte
	w[0], w[1] = seed, 1
	a.SetUniformBytes(w[:])
	order8, err := new(edwards25519.Point).SetBytes(unhex(t, "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"))
	if err != nil {
		t.Fatal(err)
	}
	p := new(edwards25519.Point).ScalarBaseMult(&a)
	p.Add(p, order8)
	k, err := NewPublicKey(p.BytesMontgomery())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestFastPathMatchesKatzenpostConstruction proves that composing the
// clamped scalars gives exactly the bytes of the O(hops²) chain of X25519.
func TestFastPathMatchesKatzenpostConstruction(t *testing.T) {
	g := DefaultGeometry()
	r := testRand(5)
	for trial := range 12 {
		hops := 1 + trial%g.NrHops
		nodes := newTestNodes(t, r, hops)
		path := forwardPath(nodes, &Recipient{})
		if trial%3 == 1 { // keys with a torsion component
			for i := range path {
				path[i].PublicKey = torsionKey(t, byte(trial*8+i))
			}
		}
		var seed [32]byte
		io.ReadFull(r, seed[:])
		fast := make([]byte, g.HeaderLength)
		slow := make([]byte, g.HeaderLength)
		stFast, err := buildHeader(rand.NewChaCha8(seed), g, path, fast, secretsFast)
		if err != nil {
			t.Fatal(err)
		}
		stSlow, err := buildHeader(rand.NewChaCha8(seed), g, path, slow, secretsSlow)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fast, slow) {
			t.Fatalf("trial %d (%d hops): headers differ", trial, hops)
		}
		for i := range stFast {
			if stFast[i] != stSlow[i] {
				t.Fatalf("trial %d hop %d: keys differ", trial, i)
			}
		}
	}
}

func TestTwistPublicKeyFallsBackToTheLadder(t *testing.T) {
	g := DefaultGeometry()
	r := testRand(6)
	nodes := newTestNodes(t, r, 2)
	path := forwardPath(nodes, &Recipient{})
	// Find a u-coordinate on the twist.
	var u [32]byte
	for i := byte(2); ; i++ {
		u[0] = i
		if montgomeryToEdwards8(&u) == nil {
			break
		}
	}
	tw, err := NewPublicKey(u[:])
	if err != nil {
		t.Fatal(err)
	}
	path[1].PublicKey = tw
	a := make([]byte, g.HeaderLength)
	b := make([]byte, g.HeaderLength)
	if _, err := buildHeader(testRand(9), g, path, a, secretsFast); err != nil {
		t.Fatal(err)
	}
	if _, err := buildHeader(testRand(9), g, path, b, secretsSlow); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("fallback differs from the ladder construction")
	}
}

func TestLowOrderPublicKeyIsRefused(t *testing.T) {
	g := DefaultGeometry()
	r := testRand(7)
	nodes := newTestNodes(t, r, 2)
	path := forwardPath(nodes, &Recipient{})
	lo, err := NewPublicKey(unhex(t, "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"))
	if err != nil {
		t.Fatal(err)
	}
	path[1].PublicKey = lo
	if _, err := buildHeader(r, g, path, make([]byte, g.HeaderLength), secretsFast); !errors.Is(err, ErrInvalidGroupElement) {
		t.Fatalf("got %v", err)
	}
	if _, err := NewPublicKey(make([]byte, 32)); !errors.Is(err, ErrInvalidGroupElement) {
		t.Fatalf("all-zero key: got %v", err)
	}
}

// vectorEntry is one entry of Katzenpost's Sphinx vector format.
type vectorEntry struct {
	Nodes []struct {
		ID         string
		PrivateKey string
	}
	Path []struct {
		ID        string
		PublicKey string
		Commands  []string
	}
	Packets  []string
	Payload  string
	Surb     string
	SurbKeys string
}

// TestHeaderVectors checks the header of every hop of Katzenpost's vectors
// (α, routing info, MAC, commands); TestVectors checks whole packets.
func TestHeaderVectors(t *testing.T) {
	var entries []vectorEntry
	vectors.Load(t, vectors.Path(t, "katzenpost/sphinx_forward_vectors.json"), &entries)
	for idx, e := range entries {
		pkt := unhex(t, e.Packets[0])
		g, err := NewGeometry(len(unhex(t, e.Payload)), 5, false)
		if err != nil {
			t.Fatal(err)
		}
		g.PacketLength = len(pkt)
		var res Result
		for i := range e.Path {
			priv, err := NewPrivateKey(unhex(t, e.Nodes[i].PrivateKey))
			if err != nil {
				t.Fatal(err)
			}
			u := newHeaderUnwrapper(g, priv)
			if err := u.unwrapHeader(pkt, &res); err != nil {
				t.Fatalf("entry %d hop %d: %v", idx, i, err)
			}
			if len(res.Commands.List) == 0 || hex.EncodeToString(res.Commands.List[0].AppendTo(nil)) != e.Path[i].Commands[0] {
				t.Fatalf("entry %d hop %d: commands %v", idx, i, res.Commands.List)
			}
			if i == len(e.Path)-1 {
				if res.Commands.NextHop != nil {
					t.Fatalf("entry %d: NextNodeHop at the last hop", idx)
				}
				continue
			}
			want := unhex(t, e.Packets[i+1])
			if !bytes.Equal(pkt[:g.HeaderLength], want[:g.HeaderLength]) {
				t.Fatalf("entry %d hop %d: header differs from the vector", idx, i)
			}
			copy(pkt, want) // the body needs AEZ: TestVectors checks it
		}
	}
}

func TestHeaderUnwrapAllocations(t *testing.T) {
	g := DefaultGeometry()
	r := testRand(8)
	nodes := newTestNodes(t, r, 2)
	hdr := make([]byte, g.PacketLength)
	if _, err := buildHeader(r, g, forwardPath(nodes, &Recipient{}), hdr[:g.HeaderLength], secretsFast); err != nil {
		t.Fatal(err)
	}
	if !aesctr.AllocationFree() {
		t.Fatal("the header stream allocates on this platform: every path (AES-NI or bitsliced) must not")
	}
	u := newHeaderUnwrapper(g, nodes[0].priv)
	var res Result
	work := make([]byte, len(hdr))
	n := testing.AllocsPerRun(20, func() {
		copy(work, hdr)
		if err := u.unwrapHeader(work, &res); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("header unwrap allocates %v times per packet, want 0", n)
	}
}
