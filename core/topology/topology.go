// Package topology derives from one epoch's PKI document what routing needs:
// the network's Sphinx geometry, the mix layers, the providers, the
// stratified order a packet must follow, and the choice of a path through
// it. Clients (building packets), nodes (checking where a packet may go
// next, building their loops) and the simulator use it, so every part of
// Sotto reads a document the same way (docs/SPEC.md, "PKI" and "Paths").
//
// It is pure: no I/O, no clock, no libp2p. Randomness and what a caller
// knows about the health of mixes come in as small interfaces.
package topology

import (
	"errors"
	"fmt"

	"github.com/sottonet/sotto/core/pkidoc"
	"github.com/sottonet/sotto/core/sphinx"
)

// ErrIncomplete: the document lacks something a path needs (a mix in every
// layer, a provider). A node still routes with such a document; a client
// cannot build packets with it.
var ErrIncomplete = errors.New("topology: incomplete document")

// Node is one member of a document, as routing sees it.
type Node struct {
	ID    [32]byte // Sphinx node ID: the Ed25519 identity
	Role  pkidoc.Role
	Layer int // mix layer, 0 first; -1 for providers
	Desc  *pkidoc.Descriptor
}

// SphinxKey returns the node's Sphinx public key for epoch e.
func (n *Node) SphinxKey(e uint64) (*sphinx.PublicKey, error) {
	raw, ok := n.Desc.SphinxKey(e)
	if !ok {
		return nil, fmt.Errorf("topology: node %x has no key for epoch %d", n.ID[:8], e)
	}
	k, err := sphinx.NewPublicKey(raw[:])
	if err != nil {
		return nil, fmt.Errorf("topology: node %x: %w", n.ID[:8], err)
	}
	return k, nil
}

// Topology is one document, indexed for routing. It is immutable once built
// and safe for concurrent readers.
type Topology struct {
	Doc       *pkidoc.Document
	Geometry  *sphinx.Geometry
	Layers    [][]*Node // Params.Layers layers, some possibly empty
	Providers []*Node   // in identity order
	byID      map[[32]byte]*Node
}

// Geometry derives a network's Sphinx geometry from its parameters: a
// forward path is the sender's gateway provider, Hops mixes and the
// destination provider, so the header has room for Hops+2 hops; SURB
// replies are supported.
func Geometry(p *pkidoc.NetworkParams) (*sphinx.Geometry, error) {
	g, err := sphinx.NewGeometry(int(p.PayloadLen), int(p.Hops)+2, true)
	if err != nil {
		return nil, fmt.Errorf("topology: geometry: %w", err)
	}
	return g, nil
}

// New indexes a document. It refuses a document whose layers cannot fit
// into its mix hops or whose geometry is impossible, and skips a member
// whose identity is not 32 bytes (the document stays usable). Mix layers
// follow pkidoc.Document.Layers (the canonical assignment).
func New(doc *pkidoc.Document) (*Topology, error) {
	p := &doc.Params
	if p.Layers > p.Hops {
		return nil, fmt.Errorf("topology: %d layers do not fit %d mix hops", p.Layers, p.Hops)
	}
	g, err := Geometry(p)
	if err != nil {
		return nil, err
	}
	t := &Topology{Doc: doc, Geometry: g, byID: map[[32]byte]*Node{}}
	add := func(sd *pkidoc.SignedDescriptor, layer int) *Node {
		d := &sd.Descriptor
		if len(d.Identity) != 32 {
			return nil
		}
		n := &Node{ID: [32]byte(d.Identity), Role: d.Role, Layer: layer, Desc: d}
		t.byID[n.ID] = n
		return n
	}
	for i, layer := range doc.Layers() {
		ns := make([]*Node, 0, len(layer))
		for _, sd := range layer {
			if n := add(sd, i); n != nil {
				ns = append(ns, n)
			}
		}
		t.Layers = append(t.Layers, ns)
	}
	for _, sd := range doc.Providers() {
		if n := add(sd, -1); n != nil {
			t.Providers = append(t.Providers, n)
		}
	}
	return t, nil
}

// Complete reports whether a full path exists: a mix in every layer and at
// least one provider. The error wraps ErrIncomplete and names what lacks.
func (t *Topology) Complete() error {
	for i, l := range t.Layers {
		if len(l) == 0 {
			return fmt.Errorf("%w: layer %d of epoch %d has no mixes", ErrIncomplete, i, t.Doc.Epoch)
		}
	}
	if len(t.Providers) == 0 {
		return fmt.Errorf("%w: epoch %d has no providers", ErrIncomplete, t.Doc.Epoch)
	}
	return nil
}

// Node returns the member with Sphinx ID id.
func (t *Topology) Node(id [32]byte) (*Node, bool) {
	n, ok := t.byID[id]
	return n, ok
}

// Len is the number of members indexed.
func (t *Topology) Len() int { return len(t.byID) }

// Stratified reports whether a packet may go from member from to member to:
// a provider sends only to layer-0 mixes, a mix of layer L only to mixes of
// layer L+1, and a mix of the last layer only to providers. Clients' paths,
// SURBs and mix loops all follow it; a packet that does not is one whose
// sender wants to skip layers. Unknown members are never stratified.
func (t *Topology) Stratified(from, to [32]byte) bool {
	a, b := t.byID[from], t.byID[to]
	if a == nil || b == nil {
		return false
	}
	switch {
	case a.Role == pkidoc.RoleProvider:
		return b.Role == pkidoc.RoleMix && b.Layer == 0
	case a.Layer == len(t.Layers)-1:
		return b.Role == pkidoc.RoleProvider
	default:
		return b.Role == pkidoc.RoleMix && b.Layer == a.Layer+1
	}
}

// Rand is the randomness path choice needs; *math/rand/v2.Rand has it.
type Rand interface {
	IntN(n int) int
}

// Health is what a path chooser knows about mixes from its loops: a suspect
// was on a recently lost loop; LostStreak counts a mix's losses since its
// last success.
type Health interface {
	Suspect(id [32]byte) bool
	LostStreak(id [32]byte) int
}

// Mixes draws one mix per layer, layer 0 first. With h nil every mix of a
// layer is equally likely. With h set, suspects are left out of every layer
// that has others; in a layer where every mix is a suspect (a lost loop
// marks every mix on it), the mixes with the shortest run of losses since
// their last success are preferred (a dead mix's run only grows). It
// returns ErrIncomplete if a layer is empty.
func (t *Topology) Mixes(r Rand, h Health) ([]*Node, error) {
	out := make([]*Node, len(t.Layers))
	var scratch []*Node
	for i, layer := range t.Layers {
		if len(layer) == 0 {
			return nil, fmt.Errorf("%w: layer %d of epoch %d has no mixes", ErrIncomplete, i, t.Doc.Epoch)
		}
		cands := layer
		if h != nil {
			scratch = scratch[:0]
			for _, n := range layer {
				if !h.Suspect(n.ID) {
					scratch = append(scratch, n)
				}
			}
			if len(scratch) == 0 {
				scratch = leastLost(scratch, layer, h)
			}
			cands = scratch
		}
		out[i] = cands[r.IntN(len(cands))]
	}
	return out, nil
}

// leastLost appends to dst the mixes of layer with the fewest losses since
// their last success.
func leastLost(dst, layer []*Node, h Health) []*Node {
	best := -1
	for _, n := range layer {
		switch s := h.LostStreak(n.ID); {
		case best < 0 || s < best:
			best, dst = s, append(dst[:0], n)
		case s == best:
			dst = append(dst, n)
		}
	}
	return dst
}

// Provider draws a provider uniformly.
func (t *Topology) Provider(r Rand) (*Node, error) {
	if len(t.Providers) == 0 {
		return nil, fmt.Errorf("%w: epoch %d has no providers", ErrIncomplete, t.Doc.Epoch)
	}
	return t.Providers[r.IntN(len(t.Providers))], nil
}

// MixLoop draws the path of a loop sent by the mix self, in stratified
// order: one mix in each layer after its own, a provider, one mix in each
// layer before its own, and self last. The loop crosses every layer once.
func (t *Topology) MixLoop(r Rand, self [32]byte) ([]*Node, error) {
	me := t.byID[self]
	if me == nil || me.Role != pkidoc.RoleMix {
		return nil, fmt.Errorf("%w: %x is not a mix of epoch %d", ErrIncomplete, self[:8], t.Doc.Epoch)
	}
	pick := func(ns []*Node, what string) (*Node, error) {
		if len(ns) == 0 {
			return nil, fmt.Errorf("%w: no %s in epoch %d", ErrIncomplete, what, t.Doc.Epoch)
		}
		return ns[r.IntN(len(ns))], nil
	}
	path := make([]*Node, 0, len(t.Layers)+1)
	for i := me.Layer + 1; i < len(t.Layers); i++ {
		n, err := pick(t.Layers[i], fmt.Sprintf("mix in layer %d", i))
		if err != nil {
			return nil, err
		}
		path = append(path, n)
	}
	p, err := pick(t.Providers, "provider")
	if err != nil {
		return nil, err
	}
	path = append(path, p)
	for i := 0; i < me.Layer; i++ {
		n, err := pick(t.Layers[i], fmt.Sprintf("mix in layer %d", i))
		if err != nil {
			return nil, err
		}
		path = append(path, n)
	}
	return append(path, me), nil
}
