package node

import (
	"context"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/interfaces"
)

// maxDeliverBatch bounds one AppendMailbox call.
const maxDeliverBatch = 256

// deliverLoop stores the payloads a provider is the final hop of. Each round
// takes every packet waiting (group commit: one durable AppendMailbox), and
// only once the batch is stored does it send the SURB-ACKs the packets
// carried, so an ACK means the message is safe in its mailbox.
func (n *Node) deliverLoop() {
	batch := make([]*packet, 0, maxDeliverBatch)
	for p := range n.deliver {
		batch = append(batch[:0], p)
	fill:
		for len(batch) < maxDeliverBatch {
			select {
			case q, ok := <-n.deliver:
				if !ok {
					break fill
				}
				batch = append(batch, q)
			default:
				break fill
			}
		}
		n.deliverBatch(batch)
	}
}

func (n *Node) deliverBatch(batch []*packet) {
	maxLife := n.cfg.Provider.MailboxLifetime
	msgs := make([]interfaces.MailboxMessage, 0, len(batch))
	var acks [][]byte
	kept := batch[:0]
	for _, p := range batch {
		var sm clientproto.StoredMessage
		if p.surbReply {
			sm.Reply, sm.SURBID, sm.Payload = true, p.surbID, p.payload
		} else {
			surb, body, err := clientproto.SplitForward(n.geo, p.payload)
			if err != nil {
				n.logLimited("deliver-payload", "undeliverable forward payload", "err", err)
				n.drop(p, dropPayload)
				continue
			}
			sm.Payload = body
			if surb != nil {
				acks = append(acks, append([]byte(nil), surb...))
			}
		}
		m := interfaces.MailboxMessage{Mailbox: p.rcpt, Lifetime: maxLife}
		if p.mailbox {
			m.Mailbox = clientproto.SURBMailbox(p.mbox)
			if l := time.Duration(p.lifetime) * time.Second; l > 0 && l < maxLife {
				m.Lifetime = l
			}
		}
		m.Payload = sm.AppendTo(make([]byte, 0, 1+len(sm.SURBID)+len(sm.Payload)))
		msgs = append(msgs, m)
		kept = append(kept, p)
	}
	if len(msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t0 := time.Now()
	resp, err := n.opts.Storage.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: msgs})
	cancel()
	n.m.pluginCall.WithLabelValues("storage", "append_mailbox").Observe(time.Since(t0).Seconds())
	if err == nil && (resp == nil || len(resp.IDs) != len(msgs)) {
		err = interfaces.ErrMalformedReply
	}
	if err != nil {
		n.logLimited("deliver-store", "mailbox append failed; payloads dropped", "count", len(kept), "err", err)
		for _, p := range kept {
			n.drop(p, dropStorage)
		}
		return
	}
	n.m.mailboxMsgs.Add(float64(len(msgs)))
	n.m.mailboxSize.Observe(float64(len(msgs)))
	for _, p := range kept {
		n.m.outDeliver.Inc()
		n.work.add(p.epoch, interfaces.WorkDelivered)
		n.putPacket(p)
	}
	for _, surb := range acks {
		n.sendACK(surb)
	}
}

// sendACK sends an all-zero acknowledgement through a SURB a forward
// packet carried.
func (n *Node) sendACK(surb []byte) {
	pkt, first, err := sphinx.NewPacketFromSURB(n.geo, surb, make([]byte, n.geo.ForwardPayloadLength))
	if err != nil {
		n.logLimited("ack", "cannot build a SURB-ACK", "err", err)
		return
	}
	p := n.getPacket()
	copy(p.buf, pkt)
	p.recv, p.outKind = time.Now(), outAck
	if first == n.id {
		// The SURB starts here: unwrap it like a client's packet.
		if !n.enqueue(p) {
			n.drop(p, dropOverload)
		}
		return
	}
	rt := n.routes.Load()
	h := rt.lookup(first, rt.current)
	if h == nil {
		n.logLimited("no-route", "no route to a SURB-ACK's first hop")
		n.drop(p, dropNoRoute)
		return
	}
	if !n.links.send(h, p) {
		n.logLimited("link-full", "outbound queue full (SURB-ACK)", "peer", h.peer)
	}
}
