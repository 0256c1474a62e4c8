package sim

import (
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"

	"github.com/sottonet/sotto/core/pkidoc"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/core/topology"
)

// simNetwork is the name in the simulated document.
const simNetwork = "sotto-sim"

// network is the simulated PKI document, read by core/topology, and the
// dense indices the simulator uses for its nodes: mixes first (layer 0
// first, in the topology's order), then providers.
type network struct {
	topo  *topology.Topology
	index map[*topology.Node]int32
	nodes []*topology.Node // by index
	mixes int              // nodes[:mixes] are mixes
	layer []int8           // by index; -1 for providers
}

// seedReader turns a PCG into an io.Reader for deterministic key material.
type seedReader struct{ r *rand.Rand }

func (s seedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(s.r.Uint32())
	}
	return len(p), nil
}

// buildNetwork signs one descriptor per node with keys derived from r and
// assembles the document. Signing and verifying 10^3 descriptors takes a
// fraction of a second, so it is done once per run.
func buildNetwork(c *Config, r *rand.Rand) (*network, error) {
	total := c.Layers*c.MixesPerLayer + c.Providers
	descs := make([]*pkidoc.SignedDescriptor, 0, total)
	rd := seedReader{r}
	for i := range total {
		var seed [ed25519.SeedSize]byte
		rd.Read(seed[:])
		priv := ed25519.NewKeyFromSeed(seed[:])
		id := priv.Public().(ed25519.PublicKey)
		d := &pkidoc.Descriptor{
			Network: simNetwork, Epoch: 1, Identity: id, PeerID: pkidoc.PeerIDOf(id),
			// 10.0.x.y/tcp/4000: never dialled, but a valid multiaddr.
			Addrs: [][]byte{{0x04, 10, 0, byte(i >> 8), byte(i), 0x06, 0x0f, 0xa0}},
			Role:  pkidoc.RoleMix,
		}
		if i >= c.Layers*c.MixesPerLayer {
			d.Role = pkidoc.RoleProvider
		}
		for k := range d.SphinxKeys {
			var raw [32]byte
			rd.Read(raw[:])
			sk, err := sphinx.NewPrivateKey(raw[:])
			if err != nil {
				return nil, fmt.Errorf("sim: sphinx key for node %d: %w", i, err)
			}
			copy(d.SphinxKeys[k][:], sk.PublicKey().Bytes())
		}
		sd, err := pkidoc.SignDescriptor(d, priv)
		if err != nil {
			return nil, fmt.Errorf("sim: signing node %d: %w", i, err)
		}
		descs = append(descs, sd)
	}
	doc, err := pkidoc.NewDocument(simNetwork, 1, c.Params(), descs)
	if err != nil {
		return nil, fmt.Errorf("sim: document: %w", err)
	}
	topo, err := topology.New(doc)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if err := topo.Complete(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	n := &network{topo: topo, index: make(map[*topology.Node]int32, total)}
	for l, layer := range topo.Layers {
		for _, m := range layer {
			n.index[m] = int32(len(n.nodes))
			n.nodes = append(n.nodes, m)
			n.layer = append(n.layer, int8(l))
		}
	}
	n.mixes = len(n.nodes)
	for _, p := range topo.Providers {
		n.index[p] = int32(len(n.nodes))
		n.nodes = append(n.nodes, p)
		n.layer = append(n.layer, -1)
	}
	return n, nil
}
