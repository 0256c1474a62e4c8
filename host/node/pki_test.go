package node

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces"
)

func clockDoc(t *testing.T, p interfaces.NetworkParams) *interfaces.Document {
	t.Helper()
	return epochDoc(t, p, 5, 3)
}

// epochDoc is a document of epoch e with mixes mixes and one provider.
func epochDoc(t *testing.T, p interfaces.NetworkParams, e uint64, mixes int) *interfaces.Document {
	t.Helper()
	var nodes []*interfaces.SignedDescriptor
	for i := range mixes + 1 {
		key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, ed25519.SeedSize))
		id := key.Public().(ed25519.PublicKey)
		d := &interfaces.Descriptor{Network: "n", Epoch: e, Identity: id, PeerID: interfaces.PeerIDOf(id),
			Addrs: [][]byte{{0x04, 127, 0, 0, 1, 0x06, 0x1f, 0x90}}, Role: interfaces.RoleMix}
		if i == mixes {
			d.Role = interfaces.RoleProvider
		}
		sd, err := interfaces.SignDescriptor(d, key)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, sd)
	}
	doc, err := interfaces.NewDocument("n", e, p, nodes)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// A document that states the epoch clock must state the node's own; one
// that states none is routed with as before.
func TestADocumentOnAnotherClockIsRefused(t *testing.T) {
	clk, err := epoch.New(time.Unix(1_700_000_000, 0), time.Minute, 6*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{clk: clk}
	base := interfaces.NetworkParams{Hops: 3, PayloadLen: 2048, Layers: 3, Mu: 1, EpochPeriod: time.Minute}
	for _, tc := range []struct {
		name string
		edit func(p *interfaces.NetworkParams)
		ok   bool
	}{
		{"no clock stated", func(p *interfaces.NetworkParams) {}, true},
		{"the node's clock", func(p *interfaces.NetworkParams) { p.Genesis, p.EpochGrace = clk.Genesis(), clk.Grace() }, true},
		{"another genesis", func(p *interfaces.NetworkParams) {
			p.Genesis, p.EpochGrace = clk.Genesis().Add(time.Second), clk.Grace()
		}, false},
		{"another grace", func(p *interfaces.NetworkParams) { p.Genesis, p.EpochGrace = clk.Genesis(), time.Second }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base
			tc.edit(&p)
			er, err := n.acceptDocument(clockDoc(t, p), &routeTable{})
			if tc.ok != (err == nil) {
				t.Fatalf("acceptDocument = %v, want ok %v", err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "clock") {
				t.Fatalf("the refusal does not name the clock: %v", err)
			}
			if tc.ok && (len(er.byID) != 4 || len(er.providers) != 1) {
				t.Fatalf("routes of %d nodes, %d providers", len(er.byID), len(er.providers))
			}
		})
	}
}

// A client that does not know the clock asks for the current epoch's
// document with CurrentEpoch and reads the clock from it.
func TestTheCurrentDocumentTellsTheClock(t *testing.T) {
	tn := newTestNet(t, netSpec{mixes: 2, providers: 1, layers: 2, mu: 200})
	pn := tn.nodeByID(tn.route().providers[0].id)
	raw, err := pn.n.Document(t.Context(), clientproto.CurrentEpoch)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := interfaces.ParseDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	if now := pn.n.clk.Now(); doc.Epoch != now && doc.Epoch+1 != now {
		t.Fatalf("document of epoch %d, the current is %d", doc.Epoch, now)
	}
	p := doc.Params
	if p.HasClock() && (!p.Genesis.Equal(pn.n.clk.Genesis()) || p.EpochPeriod != pn.n.clk.Period()) {
		t.Fatalf("the document states %v/%v, the node runs on %v/%v", p.Genesis, p.EpochPeriod, pn.n.clk.Genesis(), pn.n.clk.Period())
	}
}

// A SURB made in the previous epoch starts at a mix of that epoch's layer
// 0; layers are dealt anew each epoch, so the gateway must accept a first
// hop in layer 0 of any document it routes with, not only the current one.
func TestAFirstHopInLayerZeroOfTheGraceEpochIsAccepted(t *testing.T) {
	p := interfaces.NetworkParams{Hops: 3, PayloadLen: 2048, Layers: 3, Mu: 1, EpochPeriod: time.Minute}
	prev, cur := mustRoutes(t, epochDoc(t, p, 5, 9)), mustRoutes(t, epochDoc(t, p, 6, 9))
	var moved [32]byte
	found := false
	for _, h := range prev.layers[0] {
		if ch := cur.byID[h.id]; ch.layer != 0 {
			moved, found = h.id, true
			break
		}
	}
	if !found {
		t.Fatal("every layer-0 mix of epoch 5 is in layer 0 of epoch 6 too; pick other seeds")
	}
	onlyCurrent := &routeTable{current: 6, epochs: map[epoch.Epoch]*epochRoutes{6: cur}}
	if onlyCurrent.layerZero(moved) != nil {
		t.Fatal("a mix outside layer 0 of the only document is taken as a first hop")
	}
	withGrace := &routeTable{current: 6, epochs: map[epoch.Epoch]*epochRoutes{5: prev, 6: cur}}
	if withGrace.layerZero(moved) == nil {
		t.Fatal("a layer-0 mix of the grace epoch's document is refused as a first hop")
	}
	if withGrace.layerZero(cur.providers[0].id) != nil {
		t.Fatal("a provider is taken as a first hop")
	}
}

func mustRoutes(t *testing.T, doc *interfaces.Document) *epochRoutes {
	t.Helper()
	er, err := newEpochRoutes(doc, [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	return er
}
