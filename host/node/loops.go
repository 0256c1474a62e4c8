package node

import (
	"context"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sottonet/sotto/core/mix"
	"github.com/sottonet/sotto/core/sphinx"
)

// loops is a mix's loop cover traffic (Loopix): at rate λM of the current
// document the mix sends a packet through every other layer and a provider
// back to itself, and counts which return. Loops that do not come back in
// time are a sign of an active attack (or a failing node) on their path.
type loops struct {
	n       *Node
	mu      sync.Mutex
	pending map[[32]byte]time.Time // loop ID → deadline
	r       *rand.Rand
}

// loopSlack is added to a loop's summed delays before it counts as lost.
const loopSlack = 5 * time.Second

func newLoops(n *Node) *loops {
	var seed [32]byte
	_, _ = io.ReadFull(n.rand, seed[:])
	r := rand.New(rand.NewChaCha8(seed))
	clear(seed[:])
	return &loops{n: n, pending: map[[32]byte]time.Time{}, r: r}
}

// run sends loops until ctx ends.
func (l *loops) run(ctx context.Context) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.sweep(time.Now())
		rt := l.n.routes.Load()
		er := rt.epochs[rt.current]
		if er == nil || er.params.LambdaM <= 0 || er.selfLayer < 0 {
			t.Reset(time.Second)
			continue
		}
		// A document that just changed may not have reached the other
		// nodes yet: a loop built on it would be lost to their older view
		// (no route, or a layer order they do not share), not to an attack.
		if settle := 3 * l.n.refreshInterval(); time.Since(time.Unix(0, l.n.docChanged.Load())) < settle {
			t.Reset(settle)
			continue
		}
		if err := l.send(er); err != nil {
			l.n.logLimited("loop", "cannot send a loop", "err", err)
		}
		t.Reset(time.Duration(min(l.r.ExpFloat64()/er.params.LambdaM, 3600) * float64(time.Second)))
	}
}

// send builds and sends one loop over the current document.
func (l *loops) send(er *epochRoutes) error {
	n := l.n
	nodes, err := er.topo.MixLoop(l.r, n.id)
	if err != nil {
		return errNoLoopPath
	}
	path := make([]*hop, len(nodes))
	for i, tn := range nodes {
		path[i] = er.byID[tn.ID]
	}
	var id [32]byte
	if _, err := io.ReadFull(n.rand, id[:]); err != nil {
		return err
	}
	hops, total, err := n.loopHops(er, path, l.r, id)
	if err != nil {
		return err
	}
	pkt, err := sphinx.NewPacket(n.rand, n.geo, hops, make([]byte, n.geo.ForwardPayloadLength))
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.pending[id] = time.Now().Add(total + loopSlack)
	l.mu.Unlock()
	p := n.getPacket()
	copy(p.buf, pkt)
	p.recv, p.outKind = time.Now(), outLoop
	n.m.loopsSent.Inc()
	n.links.send(path[0], p)
	return nil
}

// loopHops builds the Sphinx hops of a loop over path (ending at this
// node, whose Recipient is id) under er's keys, with a Poisson delay
// drawn from r at every hop but the last; total is the sum of the delays.
// Mix loops and the auditor's probes build theirs the same way, so a
// mix cannot tell one from the other.
func (n *Node) loopHops(er *epochRoutes, path []*hop, r *rand.Rand, id [32]byte) (hops []sphinx.PathHop, total time.Duration, err error) {
	hops = make([]sphinx.PathHop, len(path))
	for i, h := range path {
		if h == nil {
			return nil, 0, errNoLoopPath
		}
		k, ok := h.desc.SphinxKey(er.epoch)
		if !ok {
			return nil, 0, errNoLoopPath
		}
		pub, err := sphinx.NewPublicKey(k[:])
		if err != nil {
			return nil, 0, err
		}
		hops[i] = sphinx.PathHop{ID: h.id, PublicKey: pub}
		if i == len(path)-1 {
			hops[i].Commands = []sphinx.Command{&sphinx.Recipient{ID: id}}
			continue
		}
		d := mix.ExpDelay(r, er.params.Mu, n.cfg.Mixing.MaxDelay)
		total += d
		hops[i].Commands = []sphinx.Command{&sphinx.NodeDelay{Delay: uint32(d / time.Millisecond)}}
	}
	return hops, total, nil
}

type loopError string

func (e loopError) Error() string { return string(e) }

const errNoLoopPath = loopError("node: the document has no complete loop path")

// returned reports whether id is one of this mix's loops, and counts it.
func (l *loops) returned(id [32]byte) bool {
	l.mu.Lock()
	_, ok := l.pending[id]
	delete(l.pending, id)
	l.mu.Unlock()
	if ok {
		l.n.m.loopsBack.Inc()
	}
	return ok
}

// sweep counts the loops past their deadline as lost.
func (l *loops) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, dl := range l.pending {
		if now.After(dl) {
			delete(l.pending, id)
			l.n.m.loopsLost.Inc()
			l.n.logLimited("loop-lost", "a mix loop did not return in time")
		}
	}
}
