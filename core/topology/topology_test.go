package topology

import (
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/pkidoc"
	"github.com/sottonet/sotto/core/sphinx"
)

var testParams = pkidoc.NetworkParams{
	Hops: 3, PayloadLen: 2048, Layers: 3, Mu: 1, LambdaP: 1, LambdaL: 1, LambdaD: 1, LambdaM: 1,
	EpochPeriod: time.Minute,
}

// testDoc builds a signed document with mixes mixes and provs providers.
func testDoc(t *testing.T, p pkidoc.NetworkParams, mixes, provs int) *pkidoc.Document {
	t.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	var nodes []*pkidoc.SignedDescriptor
	for i := range mixes + provs {
		var seed [32]byte
		for j := range seed {
			seed[j] = byte(rnd.Uint32())
		}
		priv := ed25519.NewKeyFromSeed(seed[:])
		d := &pkidoc.Descriptor{
			Network: "topo", Epoch: 7, Identity: priv.Public().(ed25519.PublicKey),
			PeerID: pkidoc.PeerIDOf(priv.Public().(ed25519.PublicKey)), Addrs: [][]byte{{4, 127, 0, 0, 1}}, Role: pkidoc.RoleMix,
		}
		if i >= mixes {
			d.Role = pkidoc.RoleProvider
		}
		for k := range d.SphinxKeys {
			var raw [32]byte
			rnd2{rnd}.Read(raw[:])
			sk, err := sphinx.NewPrivateKey(raw[:])
			if err != nil {
				t.Fatal(err)
			}
			copy(d.SphinxKeys[k][:], sk.PublicKey().Bytes())
		}
		sd, err := pkidoc.SignDescriptor(d, priv)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, sd)
	}
	doc, err := pkidoc.NewDocument("topo", 7, p, nodes)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// rnd2 turns a PCG into an io.Reader for key generation in tests.
type rnd2 struct{ r *rand.Rand }

func (r rnd2) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}

func mustNew(t *testing.T, doc *pkidoc.Document) *Topology {
	t.Helper()
	topo, err := New(doc)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestNewFollowsTheDocument(t *testing.T) {
	doc := testDoc(t, testParams, 7, 2)
	topo := mustNew(t, doc)
	want, err := sphinx.NewGeometry(int(testParams.PayloadLen), int(testParams.Hops)+2, true)
	if err != nil {
		t.Fatal(err)
	}
	if *topo.Geometry != *want {
		t.Fatalf("geometry %v, want %v", topo.Geometry, want)
	}
	layers := doc.Layers()
	if len(topo.Layers) != len(layers) {
		t.Fatalf("%d layers, want %d", len(topo.Layers), len(layers))
	}
	for i, l := range layers {
		if len(topo.Layers[i]) != len(l) {
			t.Fatalf("layer %d: %d mixes, want %d", i, len(topo.Layers[i]), len(l))
		}
		for j, sd := range l {
			n := topo.Layers[i][j]
			if n.ID != [32]byte(sd.Descriptor.Identity) || n.Layer != i || n.Role != pkidoc.RoleMix {
				t.Fatalf("layer %d mix %d = %+v, want identity %x", i, j, n, sd.Descriptor.Identity[:4])
			}
		}
	}
	if len(topo.Providers) != 2 || topo.Providers[0].Layer != -1 {
		t.Fatalf("providers %+v", topo.Providers)
	}
	if topo.Len() != 9 {
		t.Fatalf("Len = %d, want 9", topo.Len())
	}
	if err := topo.Complete(); err != nil {
		t.Fatal(err)
	}
	if _, err := topo.Providers[0].SphinxKey(7); err != nil {
		t.Fatal(err)
	}
	if _, err := topo.Providers[0].SphinxKey(99); err == nil {
		t.Fatal("a key for an epoch the descriptor does not cover")
	}
}

func TestNewRefusesImpossibleDocuments(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*pkidoc.NetworkParams)
	}{
		{"more layers than mix hops", func(p *pkidoc.NetworkParams) { p.Layers = 4 }},
		{"more hops than a Sphinx header holds", func(p *pkidoc.NetworkParams) { p.Hops = 255 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := testDoc(t, testParams, 3, 1)
			tc.edit(&doc.Params)
			if _, err := New(doc); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestCompleteNamesWhatIsMissing(t *testing.T) {
	for _, tc := range []struct {
		name         string
		mixes, provs int
	}{
		{"an empty layer", 2, 1},
		{"no provider", 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := mustNew(t, testDoc(t, testParams, tc.mixes, tc.provs))
			if err := topo.Complete(); !errors.Is(err, ErrIncomplete) {
				t.Fatalf("Complete = %v, want ErrIncomplete", err)
			}
			if tc.provs > 0 {
				if _, err := topo.Mixes(rand.New(rand.NewPCG(1, 1)), nil); !errors.Is(err, ErrIncomplete) {
					t.Fatalf("Mixes = %v, want ErrIncomplete", err)
				}
			} else if _, err := topo.Provider(rand.New(rand.NewPCG(1, 1))); !errors.Is(err, ErrIncomplete) {
				t.Fatalf("Provider = %v, want ErrIncomplete", err)
			}
		})
	}
}

func TestStratifiedOrder(t *testing.T) {
	topo := mustNew(t, testDoc(t, testParams, 6, 2))
	l0, l1, l2 := topo.Layers[0][0].ID, topo.Layers[1][0].ID, topo.Layers[2][0].ID
	p0, p1 := topo.Providers[0].ID, topo.Providers[1].ID
	for _, tc := range []struct {
		name     string
		from, to [32]byte
		want     bool
	}{
		{"a provider sends to layer 0", p0, l0, true},
		{"a provider may not skip to layer 1", p0, l1, false},
		{"a provider may not send to a provider", p0, p1, false},
		{"layer 0 sends to layer 1", l0, l1, true},
		{"layer 0 may not skip to layer 2", l0, l2, false},
		{"layer 1 may not go back to layer 0", l1, l0, false},
		{"layer 1 may not skip to a provider", l1, p1, false},
		{"the last layer sends to providers", l2, p1, true},
		{"the last layer may not wrap to layer 0", l2, l0, false},
		{"an unknown sender is never stratified", [32]byte{9}, l0, false},
		{"an unknown next hop is never stratified", p0, [32]byte{9}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := topo.Stratified(tc.from, tc.to); got != tc.want {
				t.Fatalf("Stratified = %v, want %v", got, tc.want)
			}
		})
	}
}

// Every path the chooser draws follows the stratified order, and every mix
// of a layer is drawn.
func TestMixesDrawsStratifiedPathsOverEveryMix(t *testing.T) {
	topo := mustNew(t, testDoc(t, testParams, 9, 2))
	r := rand.New(rand.NewPCG(3, 4))
	seen := map[[32]byte]int{}
	for range 600 {
		ms, err := topo.Mixes(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		gw, err := topo.Provider(r)
		if err != nil {
			t.Fatal(err)
		}
		dest, _ := topo.Provider(r)
		path := append(append([]*Node{gw}, ms...), dest)
		for i := 1; i < len(path); i++ {
			if !topo.Stratified(path[i-1].ID, path[i].ID) {
				t.Fatalf("hop %d → %d breaks the layer order", i-1, i)
			}
		}
		for _, m := range ms {
			seen[m.ID]++
		}
	}
	if len(seen) != 9 {
		t.Fatalf("%d of 9 mixes drawn", len(seen))
	}
	for id, n := range seen {
		if n < 100 { // 200 expected per mix; far below means a skew
			t.Fatalf("mix %x drawn %d times of 600", id[:4], n)
		}
	}
}

type fakeHealth struct {
	suspects map[[32]byte]bool
	streaks  map[[32]byte]int
}

func (h fakeHealth) Suspect(id [32]byte) bool   { return h.suspects[id] }
func (h fakeHealth) LostStreak(id [32]byte) int { return h.streaks[id] }

func TestMixesAvoidsSuspects(t *testing.T) {
	topo := mustNew(t, testDoc(t, testParams, 6, 1))
	a, b := topo.Layers[1][0], topo.Layers[1][1]
	for _, tc := range []struct {
		name string
		h    fakeHealth
		want *Node // the only mix of layer 1 that may be drawn
	}{
		{"a suspect is left out while its layer has others",
			fakeHealth{suspects: map[[32]byte]bool{a.ID: true}}, b},
		// A lost loop marks every mix on it: when all of a layer are
		// suspects, a dead mix's run of losses only grows, so the mix whose
		// run a success interrupted is preferred.
		{"when every mix of a layer is a suspect, the shortest run of losses wins",
			fakeHealth{suspects: map[[32]byte]bool{a.ID: true, b.ID: true}, streaks: map[[32]byte]int{a.ID: 5, b.ID: 1}}, b},
		{"the other way round",
			fakeHealth{suspects: map[[32]byte]bool{a.ID: true, b.ID: true}, streaks: map[[32]byte]int{a.ID: 1, b.ID: 5}}, a},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 6))
			for range 50 {
				ms, err := topo.Mixes(r, tc.h)
				if err != nil {
					t.Fatal(err)
				}
				if ms[1] != tc.want {
					t.Fatalf("layer 1 drew %x, want %x", ms[1].ID[:4], tc.want.ID[:4])
				}
			}
		})
	}
	t.Run("equal runs keep every mix", func(t *testing.T) {
		h := fakeHealth{suspects: map[[32]byte]bool{a.ID: true, b.ID: true}}
		r := rand.New(rand.NewPCG(7, 8))
		seen := map[*Node]bool{}
		for range 50 {
			ms, _ := topo.Mixes(r, h)
			seen[ms[1]] = true
		}
		if !seen[a] || !seen[b] {
			t.Fatalf("drew %d of the 2 equally suspect mixes", len(seen))
		}
	})
}

func TestMixLoopCrossesEveryLayerOnce(t *testing.T) {
	topo := mustNew(t, testDoc(t, testParams, 6, 2))
	r := rand.New(rand.NewPCG(9, 10))
	for layer := range 3 {
		self := topo.Layers[layer][0]
		path, err := topo.MixLoop(r, self.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(path) != 4 || path[len(path)-1] != self {
			t.Fatalf("layer %d: path of %d hops ending %x", layer, len(path), path[len(path)-1].ID[:4])
		}
		prev := self
		for i, n := range path {
			if !topo.Stratified(prev.ID, n.ID) {
				t.Fatalf("layer %d: hop %d breaks the layer order", layer, i)
			}
			prev = n
		}
	}
	if _, err := topo.MixLoop(r, topo.Providers[0].ID); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("a provider's loop: err = %v", err)
	}
}
