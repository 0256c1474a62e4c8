package node

import (
	"context"
	"errors"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/interfaces"
)

// maxDeliverBatch bounds one AppendMailbox call.
const maxDeliverBatch = 256

// Defaults of provider.mailbox_max_messages and provider.mailbox_max_mb:
// a day's mail of a busy client (about 8 MiB of 2 KiB bodies) fits; a
// flood into one mailbox stops there.
const (
	DefaultMailboxMaxMessages = 4096
	DefaultMailboxMaxBytes    = 16 << 20
)

// deliverLoop stores the payloads a provider is the final hop of. Each round
// takes every packet waiting (group commit: one durable AppendMailbox), and
// only once the batch is stored does it send the SURB-ACKs the packets
// carried, so an ACK means the message is safe in its mailbox.
func (n *Node) deliverLoop() {
	q := n.newQuotas()
	batch := make([]*packet, 0, maxDeliverBatch)
	for p := range n.deliver {
		batch = append(batch[:0], p)
	fill:
		for len(batch) < maxDeliverBatch {
			select {
			case r, ok := <-n.deliver:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		n.deliverBatch(batch, q)
	}
}

// delivery is one payload of a batch on its way to its mailbox.
type delivery struct {
	p    *packet
	msg  interfaces.MailboxMessage
	surb []byte // the SURB-ACK to send once stored, if any
}

func (n *Node) deliverBatch(batch []*packet, q *quotas) {
	maxLife := n.cfg.Provider.MailboxLifetime
	ds := make([]delivery, 0, len(batch))
	for _, p := range batch {
		if p.client {
			// The client's own packet ended here, at its first hop: it
			// crossed no mix (docs/SPEC.md, "Delivery at the final hop").
			// A mailbox takes only what came from the mixes, so that no
			// client can write into one without paying a full path.
			n.logLimited("first-hop", "a client's packet ended at its first hop; dropped", "epoch", p.epoch)
			n.drop(p, dropFirstHop)
			continue
		}
		d := delivery{p: p}
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
				d.surb = append([]byte(nil), surb...)
			}
		}
		d.msg = interfaces.MailboxMessage{Mailbox: p.rcpt, Lifetime: maxLife}
		if p.mailbox {
			d.msg.Mailbox = clientproto.SURBMailbox(p.mbox)
			if l := time.Duration(p.lifetime) * time.Second; l > 0 && l < maxLife {
				d.msg.Lifetime = l
			}
		}
		d.msg.Payload = sm.AppendTo(make([]byte, 0, 1+len(sm.SURBID)+len(sm.Payload)))
		if reason := q.admit(&d.msg); reason != "" {
			n.logLimited("quota:"+reason, "mailbox full; payload dropped", "reason", reason)
			n.drop(p, reason)
			continue
		}
		ds = append(ds, d)
	}
	if len(ds) == 0 {
		return
	}
	msgs := make([]interfaces.MailboxMessage, len(ds))
	for i := range ds {
		msgs[i] = ds[i].msg
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t0 := time.Now()
	resp, err := n.opts.Storage.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: msgs})
	cancel()
	n.m.pluginCall.WithLabelValues("storage", "append_mailbox").Observe(time.Since(t0).Seconds())
	if err == nil && (resp == nil || len(resp.IDs) != len(msgs)) {
		err = interfaces.ErrMalformedReply
	}
	n.storageWrote(err)
	if err != nil {
		n.logLimited("deliver-store", "mailbox append failed; payloads dropped", "count", len(ds), "err", err)
		for _, d := range ds {
			q.forget(d.msg.Mailbox) // counted, not stored: count again
			n.drop(d.p, dropStorage)
		}
		return
	}
	n.m.mailboxMsgs.Add(float64(len(msgs)))
	n.m.mailboxSize.Observe(float64(len(msgs)))
	if n.clients != nil {
		// Subscribed recipients get them in their next push frame.
		boxes := make([]interfaces.MailboxID, len(msgs))
		for i := range msgs {
			boxes[i] = msgs[i].Mailbox
		}
		n.clients.Stored(boxes...)
	}
	for _, d := range ds {
		n.m.outDeliver.Inc()
		n.work.add(d.p.epoch, interfaces.WorkDelivered)
		e := d.p.epoch
		n.putPacket(d.p)
		if d.surb != nil {
			n.sendACK(d.surb, e)
		}
	}
}

// sendACK sends an all-zero acknowledgement through a SURB a forward
// packet of epoch e carried. The SURB must start at a layer-0 mix, as
// every SURB a client makes does (and as the client protocol's Send
// demands of a reply's first hop): the provider sends nowhere else, so a
// sender cannot use ACKs to skip the mixes.
func (n *Node) sendACK(surb []byte, e epoch.Epoch) {
	pkt, first, err := sphinx.NewPacketFromSURB(n.geo, surb, make([]byte, n.geo.ForwardPayloadLength))
	if err != nil {
		n.logLimited("ack", "cannot build a SURB-ACK", "err", err)
		return
	}
	p := n.getPacket()
	copy(p.buf, pkt)
	p.recv, p.outKind = time.Now(), outAck
	rt := n.routes.Load()
	h := rt.lookup(first, e)
	if h == nil {
		n.logLimited("no-route", "no route to a SURB-ACK's first hop")
		n.drop(p, dropNoRoute)
		return
	}
	if h.role != interfaces.RoleMix || h.layer != 0 {
		n.logLimited("ack-route", "a SURB-ACK's first hop is not a layer-0 mix; not sent", "role", h.role, "layer", h.layer)
		n.drop(p, dropAckRoute)
		return
	}
	if !n.links.send(h, p) {
		n.logLimited("link-full", "outbound queue full (SURB-ACK)", "peer", h.peer)
	}
}

// quotas bounds what each mailbox holds (provider.mailbox_max_messages
// and mailbox_max_mb) without a plugin call per packet. The deliver loop
// is the only writer of mailboxes, so for each mailbox it keeps an upper
// bound of what it holds: storage's count once (ListMailbox, sizes
// without payloads), plus what was appended since. Acks and expiry only
// lower the truth, so a mailbox the bound calls full is counted again,
// at most once per recount interval, before a payload is dropped for it.
// It is used by the deliver loop's goroutine alone.
type quotas struct {
	n        *Node
	maxMsgs  int
	maxBytes int
	recount  time.Duration
	boxes    map[interfaces.MailboxID]*usage
	now      func() time.Time
}

type usage struct {
	msgs, bytes int
	counted     time.Time // when storage last counted the mailbox
}

// Bounds of the quota tracker.
const (
	quotaRecount  = time.Second // the shortest time between two counts of a full mailbox
	quotaTracked  = 1 << 16     // mailboxes tracked at most (about 5 MiB); beyond, some are forgotten and counted again
	quotaListPage = 1024
)

func (n *Node) newQuotas() *quotas {
	q := &quotas{n: n, maxMsgs: n.cfg.Provider.MailboxMaxMessages, maxBytes: n.cfg.Provider.MailboxMaxMB << 20,
		recount: quotaRecount, boxes: map[interfaces.MailboxID]*usage{}, now: time.Now}
	if q.maxMsgs == 0 {
		q.maxMsgs = DefaultMailboxMaxMessages
	}
	if q.maxBytes == 0 {
		q.maxBytes = DefaultMailboxMaxBytes
	}
	return q
}

// admit counts m against its mailbox's quota, or returns the drop reason
// if it does not fit.
func (q *quotas) admit(m *interfaces.MailboxMessage) (reason string) {
	u := q.boxes[m.Mailbox]
	if u == nil {
		var ok bool
		if u, ok = q.count(m.Mailbox); !ok {
			return "" // storage cannot count: let the append decide
		}
	}
	if over(u, q, len(m.Payload)) != "" && q.now().Sub(u.counted) >= q.recount {
		if fresh, ok := q.count(m.Mailbox); ok {
			u = fresh
		}
	}
	if reason := over(u, q, len(m.Payload)); reason != "" {
		return reason
	}
	u.msgs++
	u.bytes += len(m.Payload)
	return ""
}

func over(u *usage, q *quotas, size int) string {
	switch {
	case u.msgs+1 > q.maxMsgs:
		return dropMailboxMsgs
	case u.bytes+size > q.maxBytes:
		return dropMailboxBytes
	}
	return ""
}

// forget drops what is known of a mailbox; it is counted again when next
// needed.
func (q *quotas) forget(mb interfaces.MailboxID) { delete(q.boxes, mb) }

// count asks storage what a mailbox holds (stopping once it is full) and
// tracks it; ok is false if storage could not answer.
func (q *quotas) count(mb interfaces.MailboxID) (*usage, bool) {
	n := q.n
	u := &usage{counted: q.now()}
	after := uint64(0)
	for u.msgs < q.maxMsgs && u.bytes < q.maxBytes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t0 := time.Now()
		resp, err := n.opts.Storage.ListMailbox(ctx, &interfaces.ListMailboxRequest{Mailbox: mb, After: after, Limit: quotaListPage})
		cancel()
		n.m.pluginCall.WithLabelValues("storage", "list_mailbox").Observe(time.Since(t0).Seconds())
		if err == nil && resp == nil {
			err = interfaces.ErrMalformedReply
		}
		if err == nil {
			for _, e := range resp.Entries {
				if e.ID <= after {
					err = errors.New("list entries out of order")
					break
				}
				after = e.ID
				u.msgs++
				u.bytes += e.Size
			}
		}
		if err != nil {
			n.logLimited("quota-count", "cannot count a mailbox for its quota", "err", err)
			return nil, false
		}
		// A page may be short of Limit with more to come ("at most"):
		// only an empty one ends the mailbox.
		if len(resp.Entries) == 0 {
			break
		}
	}
	if len(q.boxes) >= quotaTracked {
		// Forget a sixteenth, whichever the map yields first; what is
		// forgotten is counted again when it receives mail.
		drop := quotaTracked / 16
		for k := range q.boxes {
			if drop == 0 {
				break
			}
			delete(q.boxes, k)
			drop--
		}
	}
	q.boxes[mb] = u
	return u, true
}
