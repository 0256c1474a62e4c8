package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/core/topology"
	"github.com/sottonet/sotto/interfaces"
)

// hop is one node of a document, as the node routes to it: the topology's
// view of it, and where to reach it.
type hop struct {
	id    [32]byte
	peer  peer.ID
	addrs []ma.Multiaddr
	role  interfaces.Role
	layer int // mix layer, -1 for providers
	desc  *interfaces.Descriptor
}

// epochRoutes is one epoch's document, indexed.
type epochRoutes struct {
	epoch     epoch.Epoch
	doc       *interfaces.Document
	topo      *topology.Topology
	raw       []byte // canonical encoding, served to clients
	hash      [32]byte
	byID      map[[32]byte]*hop
	byPeer    map[peer.ID]*hop
	layers    [][]*hop // topo.Layers, as hops
	providers []*hop   // topo.Providers, as hops
	selfLayer int      // -1 unless this node is a mix of the document
	skipped   int      // members left out: their peer ID does not parse
	params    interfaces.NetworkParams
}

// routeTable is every document the node routes with. It is replaced whole
// (copy on write), so the packet path reads it without a lock.
type routeTable struct {
	geo     *sphinx.Geometry
	current epoch.Epoch
	epochs  map[epoch.Epoch]*epochRoutes
}

// lookup finds a node by Sphinx ID, in the document of epoch e first (the
// one the packet was built with), then in the current one.
func (rt *routeTable) lookup(id [32]byte, e epoch.Epoch) *hop {
	if rt == nil {
		return nil
	}
	if er := rt.epochs[e]; er != nil {
		if h := er.byID[id]; h != nil {
			return h
		}
	}
	if er := rt.epochs[rt.current]; er != nil {
		return er.byID[id]
	}
	return nil
}

// stratified reports whether a packet may go from node self to node id in
// the document of epoch e, or in the current one if that one lacks either
// (topology.Topology.Stratified says what the order is).
func (rt *routeTable) stratified(self, id [32]byte, e epoch.Epoch) bool {
	er := rt.epochs[e]
	if er == nil || er.byID[self] == nil || er.byID[id] == nil {
		er = rt.epochs[rt.current]
	}
	return er != nil && er.topo.Stratified(self, id)
}

// layerZero returns the node id if it is a layer-0 mix of a document the
// node routes with: the current epoch's, or the previous one's while its
// keys are in grace, or the next one's. A SURB reply made in the previous
// epoch starts at a mix of that epoch's layer 0, and layers are dealt anew
// every epoch: checking the current document alone refused it for the
// whole grace period. The current document is preferred.
func (rt *routeTable) layerZero(id [32]byte) *hop {
	if rt == nil {
		return nil
	}
	if er := rt.epochs[rt.current]; er != nil {
		if h := er.byID[id]; h != nil && h.role == interfaces.RoleMix && h.layer == 0 {
			return h
		}
	}
	for _, e := range sortedEpochs(rt.epochs) {
		if h := rt.epochs[e].byID[id]; h != nil && h.role == interfaces.RoleMix && h.layer == 0 {
			return h
		}
	}
	return nil
}

// fromLastLayer reports whether the node that sent a packet over a mix
// link (peer from) is a mix of the last layer in the document of epoch e
// or in the current one: the only nodes a final hop at a provider may come
// from in the stratified topology.
func (rt *routeTable) fromLastLayer(from peer.ID, e epoch.Epoch) bool {
	if rt == nil {
		return false
	}
	for _, er := range []*epochRoutes{rt.epochs[e], rt.epochs[rt.current]} {
		if er == nil {
			continue
		}
		if h := er.byPeer[from]; h != nil && h.role == interfaces.RoleMix && h.layer == len(er.layers)-1 {
			return true
		}
	}
	return false
}

func newEpochRoutes(doc *interfaces.Document, self [32]byte) (*epochRoutes, error) {
	raw, err := doc.Encode()
	if err != nil {
		return nil, err
	}
	hash, err := doc.Hash()
	if err != nil {
		return nil, err
	}
	topo, err := topology.New(doc)
	if err != nil {
		return nil, err
	}
	er := &epochRoutes{epoch: doc.Epoch, doc: doc, topo: topo, raw: raw, hash: hash, byID: map[[32]byte]*hop{}, byPeer: map[peer.ID]*hop{}, selfLayer: -1, params: doc.Params}
	// A member the node cannot reach (its peer ID does not parse) is left
	// out of the node's routes, never the reason to refuse the document:
	// one bad entry must not stop routing for everyone (pkidoc.Validate
	// already refuses such descriptors; this holds whatever a PKI serves).
	mk := func(tn *topology.Node) (*hop, error) {
		pid, err := peer.IDFromBytes(tn.Desc.PeerID)
		if err != nil {
			er.skipped++
			return nil, fmt.Errorf("node %x: peer ID: %w", tn.ID[:8], err)
		}
		h := &hop{id: tn.ID, peer: pid, role: tn.Role, layer: tn.Layer, desc: tn.Desc}
		for _, a := range tn.Desc.Addrs {
			if m, err := ma.NewMultiaddrBytes(a); err == nil {
				h.addrs = append(h.addrs, m)
			}
		}
		er.byID[h.id] = h
		er.byPeer[h.peer] = h
		return h, nil
	}
	for i, layer := range topo.Layers {
		hs := make([]*hop, 0, len(layer))
		for _, tn := range layer {
			h, err := mk(tn)
			if err != nil {
				continue
			}
			if h.id == self {
				er.selfLayer = i
			}
			hs = append(hs, h)
		}
		er.layers = append(er.layers, hs)
	}
	for _, tn := range topo.Providers {
		h, err := mk(tn)
		if err != nil {
			continue
		}
		er.providers = append(er.providers, h)
	}
	return er, nil
}

// maxDelayMeans caps a packet's NodeDelay at this many mean delays (1/μ):
// an honest sender's Exp(μ) draw exceeds it with probability e^-25.
const maxDelayMeans = 25

// pkiState is what the PKI loop remembers between rounds.
type pkiState struct {
	mu        sync.Mutex
	rotated   epoch.Epoch
	hasRot    bool
	published map[epoch.Epoch]*publishState
	keyGen    uint64
	waitLog   time.Time
}

type publishState struct {
	desc *interfaces.SignedDescriptor
	last time.Time
}

// refreshInterval is how often the node re-checks the PKI.
func (n *Node) refreshInterval() time.Duration {
	return min(max(n.clk.Period()/40, 200*time.Millisecond), 5*time.Second)
}

// pkiLoop keeps keys, descriptors and documents current until ctx ends.
func (n *Node) pkiLoop(ctx context.Context) {
	// Refresh every interval, and just after every epoch boundary, so that
	// keys and documents turn over with the epoch.
	next := func() time.Duration {
		return min(n.refreshInterval(), n.clk.UntilNext(time.Now())+10*time.Millisecond)
	}
	t := time.NewTimer(next())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := n.refresh(ctx); err != nil && ctx.Err() == nil {
				n.logLimited("pki", "PKI refresh", "err", err)
			}
			t.Reset(next())
		}
	}
}

// waitDocument refreshes until the PKI has a document for the current epoch
// that lists this node and is complete (a mix in every layer, a provider),
// and returns the route table.
func (n *Node) waitDocument(ctx context.Context) (*routeTable, error) {
	t := time.NewTicker(min(n.refreshInterval(), 250*time.Millisecond))
	defer t.Stop()
	lastLog := time.Now()
	for {
		err := n.refresh(ctx)
		if rt := n.routes.Load(); rt != nil {
			if er := rt.epochs[rt.current]; er != nil && er.byID[n.id] != nil {
				// Routing means a packet can cross the network: a mix
				// in every layer and a provider, not this node alone.
				cerr := er.topo.Complete()
				if cerr == nil {
					return rt, nil
				}
				err = errors.Join(err, cerr)
			}
		}
		if time.Since(lastLog) > 10*time.Second {
			n.log.Info("waiting for a PKI document that lists this node and has every layer", "epoch", n.clk.Now(), "err", err)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w for epoch %d: %w", ErrNoDocument, n.clk.Now(), ctx.Err())
		case <-t.C:
		}
	}
}

// refresh is one round of the PKI loop.
func (n *Node) refresh(ctx context.Context) error {
	now := time.Now()
	cur := n.clk.At(now)
	var errs []error
	if err := n.rotate(ctx, now); err != nil {
		errs = append(errs, err)
	}
	for _, e := range []epoch.Epoch{cur, cur + 1} {
		if err := n.publish(ctx, e, now); err != nil {
			errs = append(errs, err)
		}
	}
	if err := n.fetchDocuments(ctx, cur, now); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// rotate makes sure Sphinx keys exist for the current and next two epochs,
// erases expired ones, forgets their replay sets, and installs the key set
// the unwrap workers use.
func (n *Node) rotate(ctx context.Context, now time.Time) error {
	st := &n.pki
	st.mu.Lock()
	defer st.mu.Unlock()
	cur := n.clk.At(now)
	valid := n.clk.ValidKeys(now)
	if st.hasRot && st.rotated == cur {
		// Between boundaries only the grace period of the previous key can end.
		if ks := n.keys.Load(); ks != nil && len(ks.epochs) == len(valid)+1 {
			return nil
		}
	}
	rot, err := n.opts.Keys.Rotate(n.clk, now, n.rand)
	if err != nil {
		return fmt.Errorf("node: key rotation: %w", err)
	}
	st.rotated, st.hasRot = cur, true
	n.m.epochGauge.Set(float64(cur))
	ks := &keySet{gen: st.keyGen + 1}
	st.keyGen++
	// The current epoch's key first, then the previous one during its
	// grace period, then the next one: a sender whose clock is a little
	// ahead, or a packet built in the instant after the boundary before this
	// node's next refresh, still unwraps.
	order := []epoch.Epoch{cur}
	for _, e := range valid {
		if e != cur {
			order = append(order, e)
		}
	}
	order = append(order, cur+1)
	for _, e := range order {
		if k, ok := n.opts.Keys.Sphinx(e); ok {
			ks.epochs = append(ks.epochs, e)
			ks.keys = append(ks.keys, k)
		}
	}
	n.keys.Store(ks)
	if len(rot.Created) > 0 || len(rot.Deleted) > 0 {
		n.log.Info("sphinx keys rotated", "epoch", cur, "created", rot.Created, "deleted", rot.Deleted)
	}
	for _, e := range rot.Deleted {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := n.opts.Storage.DropReplayEpoch(cctx, &interfaces.DropReplayEpochRequest{Epoch: e})
		cancel()
		if err != nil {
			n.log.Warn("could not drop an expired epoch's replay tags", "epoch", e, "err", err)
		}
	}
	n.bgWork.Go(func() { n.reportWork(cur, false) })
	return nil
}

// descriptor builds this node's signed descriptor for epoch e.
func (n *Node) descriptor(ctx context.Context, e epoch.Epoch) (*interfaces.SignedDescriptor, error) {
	pid, err := peer.IDFromPrivateKey(n.host.Peerstore().PrivKey(n.host.ID()))
	if err != nil {
		return nil, err
	}
	pidBytes, err := pid.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var addrs [][]byte
	for _, a := range n.host.Addrs() {
		addrs = append(addrs, a.Bytes())
	}
	slices.SortFunc(addrs, bytes.Compare)
	addrs = slices.CompactFunc(addrs, bytes.Equal)
	if len(addrs) > interfaces.MaxAddrs {
		addrs = addrs[:interfaces.MaxAddrs]
	}
	keys, err := n.opts.Keys.PublicKeys(e)
	if err != nil {
		return nil, err
	}
	d := &interfaces.Descriptor{
		Network:  n.cfg.Network,
		Epoch:    e,
		Identity: n.id[:],
		PeerID:   pidBytes,
		Addrs:    addrs,
		Role:     n.role,
	}
	copy(d.SphinxKeys[:], keys[:])
	if a := n.opts.Accounting; a != nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		info, err := a.Info(cctx, &interfaces.AccountingInfoRequest{Epoch: uint64(e)})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("accounting info: %w", err)
		}
		d.Accounting = info.Params
	}
	return interfaces.SignDescriptor(d, n.opts.Keys.Identity())
}

// publish hands the PKI this node's descriptor for epoch e, once, and again
// every quarter epoch to heal lost gossip. The descriptor of an epoch is
// built once and re-sent byte for byte: a second, different one would be
// equivocation.
func (n *Node) publish(ctx context.Context, e epoch.Epoch, now time.Time) error {
	st := &n.pki
	st.mu.Lock()
	if st.published == nil {
		st.published = map[epoch.Epoch]*publishState{}
	}
	ps := st.published[e]
	for old := range st.published {
		if old+1 < e && old < n.clk.At(now) {
			delete(st.published, old)
		}
	}
	st.mu.Unlock()
	if ps != nil && now.Sub(ps.last) < n.clk.Period()/4 {
		return nil
	}
	if ps == nil {
		sd, err := n.descriptor(ctx, e)
		if err != nil {
			return fmt.Errorf("node: descriptor for epoch %d: %w", e, err)
		}
		ps = &publishState{desc: n.supersede(ctx, e, sd)}
	}
	if ps.desc == nil {
		// Nothing to publish for e (see supersede): remember that.
		ps.last = now
		st.mu.Lock()
		st.published[e] = ps
		st.mu.Unlock()
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	t0 := time.Now()
	_, err := n.opts.PKI.Publish(cctx, &interfaces.PublishRequest{Descriptor: ps.desc})
	cancel()
	n.m.pluginCall.WithLabelValues("pki", "publish").Observe(time.Since(t0).Seconds())
	if err != nil {
		return fmt.Errorf("node: publish descriptor for epoch %d: %w", e, err)
	}
	ps.last = now
	st.mu.Lock()
	st.published[e] = ps
	st.mu.Unlock()
	return nil
}

// supersede returns the descriptor to publish for epoch e, or nil to
// publish none: sd, unless the PKI already holds another descriptor of
// this node for e (it was restarted with other addresses or parameters
// within an epoch it had published for). A second, different descriptor
// for one epoch is equivocation, which the PKI records as evidence against
// the node, so instead: when the node is still reachable at every address
// of its first descriptor (it only added one, say), it publishes that one
// again, byte for byte; when it is not, it publishes nothing for e. Either
// way it says plainly that the change takes effect from the next epoch it
// has not published for.
func (n *Node) supersede(ctx context.Context, e epoch.Epoch, sd *interfaces.SignedDescriptor) *interfaces.SignedDescriptor {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	resp, err := n.opts.PKI.Document(cctx, &interfaces.DocumentRequest{Epoch: e})
	cancel()
	if err != nil || resp == nil || resp.Document == nil {
		return sd
	}
	for _, old := range resp.Document.Nodes {
		if !bytes.Equal(old.Descriptor.Identity, n.id[:]) || bytes.Equal(old.Raw, sd.Raw) {
			continue
		}
		reachable := old.Descriptor.SphinxKeys == sd.Descriptor.SphinxKeys
		for _, a := range old.Descriptor.Addrs {
			reachable = reachable && slices.ContainsFunc(sd.Descriptor.Addrs, func(b []byte) bool { return bytes.Equal(a, b) })
		}
		if reachable {
			n.log.Warn("this node changed (an added address, other parameters) within an epoch it had published for: it keeps its first descriptor for that epoch; the change takes effect from the next epoch it has not published for",
				"epoch", e, "next", e+1)
			return old
		}
		n.log.Error("this node's addresses or keys changed within an epoch it had published for: peers reach it at its old addresses until that epoch ends, and it publishes nothing more for it (a second descriptor would be equivocation). The new addresses take effect from the next epoch it has not published for; change addresses just after an epoch boundary, or restart with the old ones",
			"epoch", e, "next", e+1)
		return nil
	}
	return sd
}

// fetchDocuments asks the PKI for the documents the node routes with (the
// previous epoch's while its keys are in grace, the current and the next)
// and installs any that changed.
func (n *Node) fetchDocuments(ctx context.Context, cur epoch.Epoch, now time.Time) error {
	old := n.routes.Load()
	want := []epoch.Epoch{cur, cur + 1}
	if cur > 0 && n.clk.KeyValid(cur-1, now) {
		want = append(want, cur-1)
	}
	next := &routeTable{current: cur, epochs: map[epoch.Epoch]*epochRoutes{}}
	if old != nil {
		next.geo = old.geo
	}
	changed := old == nil || old.current != cur
	var errs []error
	for _, e := range want {
		var prev *epochRoutes
		if old != nil {
			prev = old.epochs[e]
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t0 := time.Now()
		resp, err := n.opts.PKI.Document(cctx, &interfaces.DocumentRequest{Epoch: e})
		cancel()
		n.m.pluginCall.WithLabelValues("pki", "document").Observe(time.Since(t0).Seconds())
		switch {
		case errors.Is(err, interfaces.ErrNotFound):
		case err != nil:
			errs = append(errs, fmt.Errorf("node: document for epoch %d: %w", e, err))
		case resp == nil || resp.Document == nil || resp.Document.Epoch != e || resp.Document.Network != n.cfg.Network:
			errs = append(errs, fmt.Errorf("node: PKI answered for epoch %d with another epoch or network", e))
		case prev != nil && prev.hash == resp.Hash:
			next.epochs[e] = prev
			continue
		default:
			er, err := n.acceptDocument(resp.Document, next)
			if err != nil {
				errs = append(errs, err)
				break
			}
			next.epochs[e] = er
			changed = true
			n.log.Info("PKI document", "epoch", e, "hash", fmt.Sprintf("%x", er.hash[:8]), "nodes", len(er.doc.Nodes),
				"layer", er.selfLayer, "unreachable", er.skipped)
			continue
		}
		if prev != nil && n.clk.KeyValid(e, now) {
			next.epochs[e] = prev // keep what we had
		}
	}
	if old != nil && len(old.epochs) != len(next.epochs) {
		changed = true
	}
	if changed {
		n.installRoutes(next)
	}
	return errors.Join(errs...)
}

// acceptDocument checks a document against the network's geometry.
func (n *Node) acceptDocument(doc *interfaces.Document, rt *routeTable) (*epochRoutes, error) {
	if err := doc.Validate(); err != nil {
		return nil, fmt.Errorf("node: document for epoch %d: %w", doc.Epoch, err)
	}
	// A document that states the epoch clock must state this node's: a
	// client learns the clock from it, and a node on another clock would
	// use other keys than the clients expect.
	if p := &doc.Params; p.HasClock() && (!p.Genesis.Equal(n.clk.Genesis()) || p.EpochPeriod != n.clk.Period() || p.EpochGrace != n.clk.Grace()) {
		return nil, fmt.Errorf("node: document for epoch %d states the clock %v/%v/%v, this node runs on %v/%v/%v; refused",
			doc.Epoch, p.Genesis, p.EpochPeriod, p.EpochGrace, n.clk.Genesis(), n.clk.Period(), n.clk.Grace())
	}
	g, err := topology.Geometry(&doc.Params)
	if err != nil {
		return nil, fmt.Errorf("node: document for epoch %d: %w", doc.Epoch, err)
	}
	if rt.geo == nil {
		rt.geo = g
	} else if *rt.geo != *g {
		return nil, fmt.Errorf("node: document for epoch %d changes the packet geometry (%v, was %v); refused", doc.Epoch, g, rt.geo)
	}
	return newEpochRoutes(doc, n.id)
}

// installRoutes publishes a new route table: peer addresses go to the
// peerstore, the admitted set becomes the nodes of its documents, and links
// to nodes no longer in any document are closed.
func (n *Node) installRoutes(rt *routeTable) {
	peers := map[peer.ID]struct{}{}
	ttl := 3 * n.clk.Period()
	for _, e := range sortedEpochs(rt.epochs) {
		for _, h := range rt.epochs[e].byID {
			if h.peer == n.host.ID() {
				continue
			}
			peers[h.peer] = struct{}{}
			n.host.Peerstore().AddAddrs(h.peer, h.addrs, ttl)
		}
	}
	n.admitted.Replace(slices.Collect(maps.Keys(peers)))
	md := n.cfg.Mixing.MaxDelay
	if er := rt.epochs[rt.current]; er != nil && er.params.Mu > 0 {
		md = min(md, time.Duration(maxDelayMeans/er.params.Mu*float64(time.Second)))
	}
	n.maxDelay.Store(int64(md))
	n.m.peers.Set(float64(len(peers)))
	docNodes, complete := 0, 0.0
	n.m.docInfo.Reset()
	if er := rt.epochs[rt.current]; er != nil {
		docNodes = len(er.byID)
		if er.topo.Complete() == nil {
			complete = 1
		}
		n.m.docInfo.WithLabelValues(fmt.Sprint(er.epoch), fmt.Sprintf("%x", er.hash[:8])).Set(1)
	}
	n.m.docNodes.Set(float64(docNodes))
	n.m.docComplete.Set(complete)
	old := n.routes.Load()
	if old == nil || old.epochs[old.current] != rt.epochs[rt.current] {
		n.docChanged.Store(time.Now().UnixNano())
	}
	n.routes.Store(rt)
	if n.links != nil {
		n.links.prune(peers)
	}
}
