package node

import (
	"encoding/hex"
	"errors"
	"math/rand/v2"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/mix"
	"github.com/sottonet/sotto/interfaces"
)

// schedule hands p to the Poisson scheduler for its delay, counted from
// when it arrived.
func (n *Node) schedule(p *packet) {
	if err := n.sched.Push(p.recv.Add(p.delay), p); err != nil {
		reason := dropQueueFull
		if errors.Is(err, mix.ErrStopped) {
			reason = dropShutdown
		}
		n.logLimited("schedule:"+reason, "packet dropped by the scheduler", "reason", reason)
		n.drop(p, reason)
	}
}

// release is the scheduler's callback: the packet's delay is over. It runs
// on the scheduler's goroutine, or on a committer's for a packet whose
// delay ended during its commit, and must not block (mix.NewScheduler):
// it only tries to queue the packet, on its next hop's link (links.send)
// or for the mailbox writer (n.deliver), and drops and counts it when that
// queue is full, so a slow peer or storage plugin costs its own packets,
// never the release times of the others.
func (n *Node) release(p *packet) {
	if p.next {
		n.forward(p, &p.nextID, p.epoch)
		return
	}
	n.final(p)
}

// forward queues p on the link to the node with Sphinx ID id.
func (n *Node) forward(p *packet, id *[32]byte, e epoch.Epoch) {
	rt := n.routes.Load()
	h := rt.lookup(*id, e)
	if h == nil {
		n.logLimited("no-route", "no route to next hop", "node", hex.EncodeToString(id[:8]), "epoch", e)
		n.drop(p, dropNoRoute)
		return
	}
	if !rt.stratified(n.id, *id, e) {
		n.logLimited("bad-route", "next hop breaks the layer order", "node", hex.EncodeToString(id[:8]), "layer", h.layer)
		n.drop(p, dropBadRoute)
		return
	}
	n.work.add(p.epoch, interfaces.WorkForwarded)
	if f := n.cfg.Experiment.CheatDropForwardedFraction; f > 0 && rand.Float64() < f {
		n.putPacket(p) // an experiment's cheating mix: counted as work, never sent
		return
	}
	if !n.links.send(h, p) {
		n.logLimited("link-full", "outbound queue full", "peer", h.peer)
	}
}

// final handles a packet whose last hop this node is.
func (n *Node) final(p *packet) {
	if n.role == interfaces.RoleMix {
		if p.recipient && !p.surbReply && n.loops.returned(p.rcpt) {
			n.putPacket(p)
			return
		}
		n.logLimited("not-for-us", "final hop at a mix that is not one of its loops")
		n.drop(p, dropNotForUs)
		return
	}
	// A final hop that came over a mix link must come from the last
	// layer: an admitted node that skips the mixes (a provider or a first-
	// layer mix handing packets straight to a victim's provider) gets
	// nothing stored. Clients' own packets are the first-hop check's
	// (deliverBatch).
	if !p.client && !n.routes.Load().fromLastLayer(p.from, p.epoch) {
		n.logLimited("not-last-layer", "a final hop from a node that is not a last-layer mix; dropped")
		n.drop(p, dropNotLastLayer)
		return
	}
	if p.recipient && !p.surbReply && n.audit != nil && n.audit.returned(p.rcpt) {
		n.putPacket(p) // one of this auditor's probes came back
		return
	}
	if p.recipient && p.rcpt == clientproto.DropRecipient && !p.surbReply {
		n.drop(p, dropDecoy)
		return
	}
	if !p.recipient && !p.mailbox {
		n.logLimited("not-for-us", "final hop without a recipient")
		n.drop(p, dropNotForUs)
		return
	}
	select {
	case n.deliver <- p:
	default:
		n.logLimited("deliver-full", "mailbox write queue full")
		n.drop(p, dropStorage)
	}
}
