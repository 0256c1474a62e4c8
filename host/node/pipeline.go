// The packet pipeline, stage by stage: intake (this file: its queues, the
// mix streams' and the clients' packets), unwrap.go, replay.go, the
// mix.Scheduler, release.go; packet.go holds the pooled packet they pass on.

package node

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/mix"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/host/link"
	"github.com/sottonet/sotto/interfaces"
)

// startPipeline sizes the pipeline for the geometry of the first document.
func (n *Node) startPipeline(rt *routeTable) error {
	n.geo = rt.geo
	qc := n.cfg.Mixing.QueueCapacity
	n.in = make(chan *packet, min(qc, 4096))
	n.replay = make(chan *packet, min(qc, 4096))
	sched, err := mix.NewScheduler(qc, n.release)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.sched = sched
	n.schedPub.Store(sched)
	if n.role == interfaces.RoleProvider {
		n.deliver = make(chan *packet, min(qc, 4096))
	}
	n.loops = newLoops(n)
	if r := n.cfg.Provider.AuditRate; r > 0 && n.role == interfaces.RoleProvider {
		n.audit = newAuditor(n, r)
	}
	return nil
}

// backPressure is how long a mix stream's reader waits for room in the
// input queue before it drops the packet: short bursts slow the sender down
// (its stream is not read meanwhile), sustained overload drops and counts.
const backPressure = 20 * time.Millisecond

// deliverFromPeer takes a packet read from a mix stream.
func (n *Node) deliverFromPeer(from peer.ID, b link.Buffer) {
	p := b.(*packet)
	n.m.inPeer.Inc()
	p.recv, p.from = time.Now(), from
	if n.enqueue(p) {
		return
	}
	t := time.NewTimer(backPressure) // only under overload
	defer t.Stop()
	n.inMu.RLock()
	defer n.inMu.RUnlock()
	if !n.inClose {
		select {
		case n.in <- p:
			return
		case <-t.C:
		}
	}
	if n.inClose {
		n.drop(p, dropShutdown)
		return
	}
	n.logLimited("overload", "input queue full; packet dropped")
	n.drop(p, dropOverload)
}

// enqueue hands p to the unwrap workers without blocking.
func (n *Node) enqueue(p *packet) bool {
	n.inMu.RLock()
	defer n.inMu.RUnlock()
	if n.inClose {
		return false
	}
	select {
	case n.in <- p:
		return true
	default:
		return false
	}
}

// Inject takes a packet from a client of this provider: the provider is its
// first hop. It does not block; a full pipeline gives clientproto.ErrBusy.
func (n *Node) Inject(pkt []byte) error {
	if n.geo == nil {
		return fmt.Errorf("%w: node not routing yet", clientproto.ErrBusy)
	}
	if len(pkt) != n.geo.PacketLength {
		return fmt.Errorf("%w: packet of %d bytes, want %d", sphinx.ErrInvalidPacket, len(pkt), n.geo.PacketLength)
	}
	if n.storageFault.Load() != 0 && n.storageRefuses(time.Now()) { // no clock read per packet while storage works
		return errStorageRefused
	}
	n.m.inClient.Inc()
	p := n.getPacket()
	copy(p.buf, pkt)
	p.recv, p.client = time.Now(), true
	if !n.enqueue(p) {
		n.drop(p, dropOverload)
		return fmt.Errorf("%w: input queue full", clientproto.ErrBusy)
	}
	return nil
}

func (n *Node) refused(from peer.ID, err error) {
	reason := "read"
	switch {
	case errors.Is(err, link.ErrNotAdmitted):
		reason = "not_admitted"
	case errors.Is(err, link.ErrFrameSize), errors.Is(err, link.ErrFrameVersion):
		reason = "frame"
	}
	n.m.refused.WithLabelValues(reason).Inc()
	if reason == "read" && !errors.Is(err, io.ErrUnexpectedEOF) {
		// A peer closing its connection (a restart, a shutdown) is normal;
		// a stream that stops inside a frame is not.
		n.log.Debug("mix stream ended", "peer", from, "err", err)
		return
	}
	n.logLimited("stream refused:"+reason, "mix stream cut", "peer", from, "reason", reason, "err", err)
}
