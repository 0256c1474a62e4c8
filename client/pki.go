package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/cover"
	"github.com/sottonet/sotto/core/mix"
	"github.com/sottonet/sotto/core/pkidoc"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/core/topology"
)

// view is one verified PKI document with what the client derives from it.
type view struct {
	doc     *pkidoc.Document
	topo    *topology.Topology
	geo     *sphinx.Geometry // topo.Geometry
	rates   cover.Rates
	keys    map[keyRef]*sphinx.PublicKey // filled lazily, under Client.mu
	fetched time.Time                    // when the provider sent it
}

type keyRef struct {
	id    [32]byte
	epoch uint64
}

// newView checks a parsed document against what this client needs: its
// network, its own provider, mixes in every layer, a geometry with room for
// the path and a body.
func newView(doc *pkidoc.Document, network string, provider [32]byte) (*view, error) {
	p := doc.Params
	if network != "" && doc.Network != network {
		return nil, fmt.Errorf("client: document for network %q, want %q", doc.Network, network)
	}
	topo, err := topology.New(doc)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if err := topo.Complete(); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if topo.Geometry.UserForwardPayloadLength < minBody {
		return nil, fmt.Errorf("client: payload of %d bytes is below the client's minimum %d", topo.Geometry.UserForwardPayloadLength, minBody)
	}
	rates := cover.Rates{Payload: p.LambdaP, Loop: p.LambdaL, Drop: p.LambdaD}
	if err := rates.Validate(); err != nil {
		return nil, fmt.Errorf("client: document rates: %w", err)
	}
	if n, ok := topo.Node(provider); !ok || n.Role != pkidoc.RoleProvider {
		return nil, fmt.Errorf("%w: own provider %x is not a provider of the document of epoch %d", ErrUnknownProvider, provider[:8], doc.Epoch)
	}
	return &view{doc: doc, topo: topo, geo: topo.Geometry, rates: rates, keys: map[keyRef]*sphinx.PublicKey{}}, nil
}

// provider returns the provider with Sphinx ID id, if the view has one.
func (v *view) provider(id [32]byte) (*topology.Node, bool) {
	n, ok := v.topo.Node(id)
	return n, ok && n.Role == pkidoc.RoleProvider
}

// key returns n's Sphinx key for epoch e, parsed once per view.
func (v *view) key(n *topology.Node, e uint64) (*sphinx.PublicKey, error) {
	ref := keyRef{n.ID, e}
	if k, ok := v.keys[ref]; ok {
		return k, nil
	}
	if _, ok := n.Desc.SphinxKey(e); !ok {
		return nil, fmt.Errorf("%w: node %x has no key for epoch %d", ErrNotReady, n.ID[:8], e)
	}
	k, err := n.SphinxKey(e)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	v.keys[ref] = k
	return k, nil
}

// fetchDocument asks the provider for epoch e's document and verifies it.
func (c *Client) fetchDocument(ctx context.Context, e uint64) (*view, error) {
	fctx, cancel := context.WithTimeout(ctx, callTimeout)
	raw, err := c.link().Document(fctx, e)
	cancel()
	c.observe(ctx, err)
	if err != nil {
		return nil, fmt.Errorf("client: document for epoch %d: %w", e, err)
	}
	doc, err := pkidoc.ParseDocument(raw)
	if err != nil {
		return nil, fmt.Errorf("client: document for epoch %d: %w", e, err)
	}
	// Another clock explains a wrong epoch too: check it first.
	clk := c.clk0()
	if p := &doc.Params; p.HasClock() && (!p.Genesis.Equal(clk.Genesis()) || p.EpochPeriod != clk.Period() || p.EpochGrace != clk.Grace()) {
		return nil, fmt.Errorf("%w: the document of epoch %d states genesis %v, period %v, grace %v; the client runs on %v, %v, %v",
			ErrWrongClock, doc.Epoch, p.Genesis, p.EpochPeriod, p.EpochGrace, clk.Genesis(), clk.Period(), clk.Grace())
	}
	if doc.Epoch != e {
		return nil, fmt.Errorf("client: asked for epoch %d, provider sent %d", e, doc.Epoch)
	}
	c.mu.Lock()
	network := c.network
	c.mu.Unlock()
	v, err := newView(doc, network, c.cfg.ProviderID)
	if err != nil {
		return nil, err
	}
	v.fetched = time.Now()
	c.mu.Lock()
	if c.network == "" {
		c.network = doc.Network
		c.changed()
	}
	c.docs[e] = v
	if c.geo == nil {
		c.geo = v.geo
		c.changed()
	}
	for old := range c.docs {
		if old+1 < e {
			delete(c.docs, old)
		}
	}
	evs := c.updateConn(v.fetched)
	c.mu.Unlock()
	c.docOnce.Do(func() { close(c.firstDoc) })
	c.geoOnce.Do(func() { close(c.geoKnown) })
	c.emit(evs)
	return v, nil
}

// latestView returns the newest document held (under c.mu), whatever its
// epoch: the network's geometry does not change between documents, so it
// fixes fragment sizes even while the client cannot route.
func (c *Client) latestView() *view {
	var best *view
	for e, v := range c.docs {
		if best == nil || e > best.doc.Epoch {
			best = v
		}
	}
	return best
}

// viewFor returns the view to build epoch e's SURBs with (under c.mu):
// e's document if the client holds it, else base's members laid out in
// the layers e's document gives them (pkidoc.Document.Layers depends on
// the epoch, the network and the mixes only).
func (c *Client) viewFor(e uint64, base *view) (*view, error) {
	if v, ok := c.docs[e]; ok {
		return v, nil
	}
	d := *base.doc
	d.Epoch = e
	v, err := newView(&d, c.network, c.cfg.ProviderID)
	if err != nil {
		return nil, err
	}
	v.fetched = base.fetched
	return v, nil
}

// docRefresh is how often the client fetches the current epoch's document
// again. A document grows while descriptors gossip in (a node that started
// late, a descriptor the provider got after the client's first fetch), and
// a client that kept its first copy for the whole epoch could neither reach
// a late provider nor route over a late mix.
func docRefresh(period time.Duration) time.Duration { return min(period/8, time.Minute) }

// docLoop keeps the documents of the current epoch, fetched again every
// docRefresh, and, in the last eighth of an epoch, the next one. A fetch
// that fails is retried with backoff (from 1 s, doubling with jitter, up
// to min(period/8, 30 s)), whether or not an older copy is held. A
// document on another clock than the client's ends Run (stop).
func (c *Client) docLoop(ctx context.Context, stop context.CancelCauseFunc) {
	clock := c.clk0()
	refresh := docRefresh(clock.Period())
	bo := backoff{min: min(time.Second, refresh), max: max(min(clock.Period()/8, connectBackoffMax), time.Second)}
	for {
		now := time.Now()
		e := clock.At(now)
		want := []uint64{e}
		if clock.UntilNext(now) <= clock.Period()/8 {
			want = append(want, e+1)
		}
		failed := false
		for _, w := range want {
			c.mu.Lock()
			v, have := c.docs[w]
			c.mu.Unlock()
			if have && (w != e || now.Sub(v.fetched) < refresh) {
				continue
			}
			if _, err := c.fetchDocument(ctx, w); err != nil {
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, ErrWrongClock) {
					c.log.Error("the network changed its epoch clock", "err", err)
					stop(err)
					return
				}
				failed = true
				lvl := c.log.Warn
				if errors.Is(err, clientproto.ErrNoDocument) || isLinkError(err) {
					// Expected near a boundary; an outage is logged once,
					// by the connection state.
					lvl = c.log.Debug
				}
				lvl("PKI document not fetched", "epoch", w, "held", have, "err", err)
			}
		}
		var wait time.Duration
		if failed {
			wait = bo.next()
		} else {
			bo.reset()
			until := clock.UntilNext(time.Now())
			wait = until
			if until > clock.Period()/8 {
				wait = until - clock.Period()/8
			}
			c.mu.Lock()
			if v, ok := c.docs[e]; ok {
				wait = min(wait, time.Until(v.fetched.Add(refresh)))
			}
			c.mu.Unlock()
		}
		if !sleep(ctx, max(wait, 10*time.Millisecond)) {
			return
		}
	}
}

// notInDocument is the error for a node (what) missing from v when the
// network is in epoch cur. It names the document's epoch, and when that
// is not the current one it says so: a client routing on the previous
// epoch's document while the provider already holds the current one must
// not leave the reader thinking the provider is behind.
func notInDocument(v *view, cur uint64, what string) error {
	switch e := v.doc.Epoch; {
	case e == cur:
		return fmt.Errorf("%w: %s is not in the document of epoch %d", ErrUnknownProvider, what, e)
	case e < cur:
		return fmt.Errorf("%w: %s is not in the document of epoch %d, the newest this client holds; the network is in epoch %d, whose document the client has not fetched yet",
			ErrUnknownProvider, what, e, cur)
	default:
		return fmt.Errorf("%w: %s is not in the document of the next epoch %d (the network is in epoch %d)", ErrUnknownProvider, what, e, cur)
	}
}

// routeView returns the view and key epoch to build packets with now: the
// current epoch's document, or the previous one, whose descriptors carry
// the current epoch's keys too.
func (c *Client) routeView(now time.Time) (*view, uint64, error) {
	e := c.clk0().At(now)
	if v, ok := c.docs[e]; ok {
		return v, e, nil
	}
	if v, ok := c.docs[e-1]; ok && e > 0 {
		return v, e, nil
	}
	return nil, e, fmt.Errorf("%w: epoch %d", ErrNotReady, e)
}

// pickMixes draws one mix per layer uniformly. With avoid set it leaves out
// suspects (mixes on recently lost loops) in every layer that has others
// (topology.Topology.Mixes says how).
func (c *Client) pickMixes(v *view, avoid bool, now time.Time) ([]*topology.Node, error) {
	var h topology.Health
	if avoid {
		h = clientHealth{c, now}
	}
	return v.topo.Mixes(c.rnd, h)
}

// clientHealth is what the client's loops and ACKs say about mixes, as of
// now (under Client.mu).
type clientHealth struct {
	c   *Client
	now time.Time
}

func (h clientHealth) Suspect(id [32]byte) bool { return h.c.suspect(id, h.now) }

func (h clientHealth) LostStreak(id [32]byte) int {
	if mh, ok := h.c.health[id]; ok {
		return mh.lostStreak
	}
	return 0
}

// delayCap bounds one hop's delay so that a packet's whole path fits into
// its key's grace period, and so that timeouts stay finite.
func (c *Client) delayCap(v *view) time.Duration {
	hops := len(v.topo.Layers) + 1
	capd := time.Duration(0)
	if mu := v.doc.Params.Mu; mu > 0 {
		capd = time.Duration(10 / mu * float64(time.Second))
	}
	if g := c.clk0().Grace(); g > 0 {
		if gc := g / time.Duration(hops); capd == 0 || gc < capd {
			capd = gc
		}
	}
	return capd
}

func (c *Client) nodeDelay(v *view) *sphinx.NodeDelay {
	d := mix.ExpDelay(c.rnd, v.doc.Params.Mu, c.delayCap(v))
	ms := d.Milliseconds()
	if ms > math.MaxUint32 {
		ms = math.MaxUint32
	}
	return &sphinx.NodeDelay{Delay: uint32(ms)}
}

// timeouts derives how long to wait for an ACK and for a loop's two legs:
// a high quantile of the sum of the legs' exponential delays (k draws of
// Exp(μ): mean k/μ, deviation √k/μ; four deviations above the mean), plus
// two fetch intervals and two seconds for links and processing.
func (c *Client) timeouts(v *view) (ack, loopBody, loopAck time.Duration) {
	L := len(v.topo.Layers)
	mu := v.doc.Params.Mu
	slack := 2*c.cfg.FetchInterval + 2*time.Second
	q := func(k int) time.Duration {
		if !(mu > 0) {
			return slack
		}
		s := (float64(k) + 4*math.Sqrt(float64(k))) / mu
		return time.Duration(min(s, 1e6)*float64(time.Second)) + slack
	}
	ack, loopBody, loopAck = q(2*L+1), q(L+1), q(2*L+1)
	if c.cfg.RetransmitTimeout > 0 {
		ack = c.cfg.RetransmitTimeout
	}
	if c.cfg.LoopTimeout > 0 {
		loopBody, loopAck = c.cfg.LoopTimeout, c.cfg.LoopTimeout+(loopAck-loopBody)
	}
	return ack, loopBody, loopAck
}

// deliveryTimeout is the base wait for an end-to-end ACK of a fragment sent
// through a contact's SURB: the forward ACK's wait (both legs' delays and
// fetches), plus the recipient's fetch and the payload slot its ACK waits
// for (ten mean gaps of λP), plus slack.
func (c *Client) deliveryTimeout(v *view) time.Duration {
	if c.cfg.DeliveryTimeout > 0 {
		return c.cfg.DeliveryTimeout
	}
	ack, _, _ := c.timeouts(v)
	var slot time.Duration
	if p := v.rates.Payload; p > 0 {
		slot = time.Duration(min(10/p, 600) * float64(time.Second))
	}
	return ack + 2*c.cfg.FetchInterval + slot + 5*time.Second
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
