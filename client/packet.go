package client

import (
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/cover"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/core/topology"
)

// slotPacket is what one send slot sends.
type slotPacket struct {
	hop   [32]byte
	pkt   []byte
	epoch uint64       // the epoch of the keys it was built with
	frag  *outFragment // the fragment it carries, if any
	reply bool         // an end-to-end ACK through someone's SURB
	gen   uint64       // reply: send once the state of this generation is saved
}

// buildSlot makes the packet for one send slot (under c.mu). It also
// returns the statuses of messages that reached a final state meanwhile.
func (c *Client) buildSlot(kind cover.Kind, now time.Time) (sp slotPacket, finished []MessageStatus, err error) {
	v, e, err := c.routeView(now)
	if err != nil {
		return sp, nil, err
	}
	switch kind {
	case cover.Payload:
		c.stats.PacketsPayload++
		if r, ok := c.nextReply(); ok {
			return r, nil, nil
		}
		for {
			f := c.nextFragment()
			if f == nil {
				c.stats.PayloadDecoys++
				sp.hop, sp.pkt, err = c.buildDrop(v, e, now)
				sp.epoch = e
				return sp, finished, err
			}
			sp, err = c.buildFragment(v, e, f, now)
			if err == nil {
				sp.frag = f
				return sp, finished, nil
			}
			// A fragment that cannot be built now never will be (unknown
			// provider, no usable SURB left): fail its message, fill the
			// slot with the next fragment.
			c.log.Warn("message failed", "id", f.msg.id, "err", err)
			finished = append(finished, c.fail(f.msg, err, now)...)
		}
	case cover.Loop:
		c.stats.PacketsLoop++
		sp.hop, sp.pkt, err = c.buildLoop(v, e, now)
	default:
		c.stats.PacketsDrop++
		sp.hop, sp.pkt, err = c.buildDrop(v, e, now)
	}
	sp.epoch = e
	return sp, finished, err
}

// nextReply pops the next end-to-end ACK whose fragment is saved (under
// c.mu).
func (c *Client) nextReply() (slotPacket, bool) {
	for i, r := range c.replies {
		if c.store == nil || r.gen <= c.savedGen {
			c.replies = append(c.replies[:i:i], c.replies[i+1:]...)
			return r, true
		}
	}
	return slotPacket{}, false
}

// queueReply queues an end-to-end ACK through surb, a SURB a sender put in
// a fragment it sent through one of this client's contacts (under c.mu).
// It leaves in a payload slot once the state holding the fragment is
// saved; the sender learns nothing but that its fragment arrived.
func (c *Client) queueReply(g *sphinx.Geometry, surb []byte) {
	if len(c.replies) >= maxReplies {
		c.stats.RepliesDropped++
		return
	}
	pkt, first, err := sphinx.NewPacketFromSURB(g, surb, make([]byte, g.ForwardPayloadLength))
	if err != nil {
		c.stats.Malformed++
		return
	}
	c.replies = append(c.replies, slotPacket{hop: first, pkt: pkt, reply: true, gen: c.gen + 1})
}

// maxReplies bounds the end-to-end ACKs waiting for a payload slot.
const maxReplies = 1024

// nextFragment pops the next fragment that still needs sending.
func (c *Client) nextFragment() *outFragment {
	for len(c.queue) > 0 {
		f := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		if !f.inQueue {
			continue
		}
		f.inQueue = false
		c.queued--
		if f.acked || f.msg.final() {
			continue
		}
		return f
	}
	return nil
}

func (c *Client) requeueFront(f *outFragment) {
	if f.inQueue {
		return
	}
	f.inQueue = true
	c.queued++
	c.queue = append([]*outFragment{f}, c.queue...)
}

func (c *Client) pathHop(v *view, e uint64, n *topology.Node, cmds ...sphinx.Command) (sphinx.PathHop, error) {
	if n == nil {
		return sphinx.PathHop{}, notInDocument(v, e, "a hop")
	}
	k, err := v.key(n, e)
	if err != nil {
		return sphinx.PathHop{}, err
	}
	return sphinx.PathHop{ID: n.ID, PublicKey: k, Commands: cmds}, nil
}

// gateway is the client's own provider in v (newView checked it is there).
func (c *Client) gateway(v *view) *topology.Node {
	n, _ := v.provider(c.cfg.ProviderID)
	return n
}

// buildForward makes a forward packet: own provider (gateway) → one mix
// per layer → dest, where Recipient(recipient) names the mailbox.
func (c *Client) buildForward(v *view, e uint64, dest *topology.Node, recipient clientproto.MailboxID, surb, body []byte, avoid bool, now time.Time) ([]byte, [][32]byte, error) {
	mixes, err := c.pickMixes(v, avoid, now)
	if err != nil {
		return nil, nil, err
	}
	path := make([]sphinx.PathHop, 0, len(mixes)+2)
	gw, err := c.pathHop(v, e, c.gateway(v), c.nodeDelay(v))
	if err != nil {
		return nil, nil, err
	}
	path = append(path, gw)
	ids := make([][32]byte, 0, len(mixes))
	for _, m := range mixes {
		h, err := c.pathHop(v, e, m, c.nodeDelay(v))
		if err != nil {
			return nil, nil, err
		}
		path = append(path, h)
		ids = append(ids, m.ID)
	}
	last, err := c.pathHop(v, e, dest, &sphinx.Recipient{ID: recipient})
	if err != nil {
		return nil, nil, err
	}
	path = append(path, last)
	payload, err := clientproto.PackForward(v.geo, surb, body)
	if err != nil {
		return nil, nil, err
	}
	pkt, err := sphinx.NewPacket(c.entropy, v.geo, path, payload)
	if err != nil {
		return nil, nil, fmt.Errorf("client: building packet: %w", err)
	}
	return pkt, ids, nil
}

// makeSURB makes a SURB over one mix per layer to the client's own
// provider, whose final commands are final (a SURBReply first).
func (c *Client) makeSURB(v *view, e uint64, avoid bool, now time.Time, final ...sphinx.Command) (surb, keys []byte, mixes [][32]byte, err error) {
	ms, err := c.pickMixes(v, avoid, now)
	if err != nil {
		return nil, nil, nil, err
	}
	path := make([]sphinx.PathHop, 0, len(ms)+1)
	for _, m := range ms {
		h, err := c.pathHop(v, e, m, c.nodeDelay(v))
		if err != nil {
			return nil, nil, nil, err
		}
		path = append(path, h)
		mixes = append(mixes, m.ID)
	}
	h, err := c.pathHop(v, e, c.gateway(v), final...)
	if err != nil {
		return nil, nil, nil, err
	}
	path = append(path, h)
	surb, keys, err = sphinx.NewSURB(c.entropy, v.geo, path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("client: making SURB: %w", err)
	}
	return surb, keys, mixes, nil
}

// newSURBID draws a SURB ID not in use.
func (c *Client) newSURBID() ([sphinx.SURBIDLength]byte, error) {
	for {
		id, err := randID16(c.entropy)
		if err != nil {
			return id, fmt.Errorf("client: SURB ID: %w", err)
		}
		if _, taken := c.surbs[id]; !taken {
			return id, nil
		}
	}
}

func (c *Client) buildFragment(v *view, e uint64, f *outFragment, now time.Time) (slotPacket, error) {
	clk := c.clk0()
	if sp := f.pending; sp != nil {
		f.pending = nil
		// The provider refused this packet before (busy, or the link was
		// down): it never entered the network, so the same bytes may go
		// again while their keys are current.
		if sp.epoch == clk.At(now) {
			return *sp, nil
		}
	}
	m := f.msg
	plain := fragmentPlain{kind: m.kind(), id: m.id, index: f.index, count: len(m.frags), data: f.data}
	body, err := sealBody(m.key, &plain, v.geo.UserForwardPayloadLength)
	if err != nil {
		return slotPacket{}, err
	}
	if m.to.Anonymous() {
		s := f.surb
		if s == nil || s.Epoch != e {
			// Reserved in another epoch (the message waited across a
			// boundary), or spent by an earlier try: take another.
			ss, err := c.takeSURBs(m.to, 1, now)
			if err != nil {
				return slotPacket{}, err
			}
			s = ss[0]
		}
		f.surb = nil
		// The fragment carries a SURB back to this client, through which
		// the recipient's client acknowledges it end to end.
		id, err := c.newSURBID()
		if err != nil {
			return slotPacket{}, err
		}
		ackSURB, keys, _, err := c.makeSURB(v, e, true, now, &sphinx.SURBReply{ID: id}, &sphinx.Recipient{ID: c.ownMailbox})
		if err != nil {
			return slotPacket{}, err
		}
		payload, err := clientproto.PackForward(v.geo, ackSURB, body)
		if err != nil {
			clear(keys)
			return slotPacket{}, err
		}
		pkt, first, err := sphinx.NewPacketFromSURB(v.geo, s.SURB, payload)
		if err != nil {
			clear(keys)
			return slotPacket{}, fmt.Errorf("%w: %w", ErrContact, err)
		}
		f.mixes = nil // the contact's path is the recipient's secret: nothing to blame
		f.timeout = retryTimeout(c.deliveryTimeout(v), f.tries)
		c.surbs[id] = &surbEntry{kind: surbE2E, keys: keys, expires: now.Add(2 * f.timeout), frag: f}
		return slotPacket{hop: first, pkt: pkt, epoch: s.Epoch}, nil
	}
	dest, ok := v.provider(m.to.Provider)
	if !ok {
		return slotPacket{}, notInDocument(v, e, fmt.Sprintf("the contact's provider %x", m.to.Provider[:8]))
	}
	id, err := c.newSURBID()
	if err != nil {
		return slotPacket{}, err
	}
	surb, keys, ackMixes, err := c.makeSURB(v, e, true, now, &sphinx.SURBReply{ID: id}, &sphinx.Recipient{ID: c.ownMailbox})
	if err != nil {
		return slotPacket{}, err
	}
	pkt, fwdMixes, err := c.buildForward(v, e, dest, m.to.Mailbox, surb, body, true, now)
	if err != nil {
		clear(keys)
		return slotPacket{}, err
	}
	ack, _, _ := c.timeouts(v)
	f.mixes = append(fwdMixes, ackMixes...)
	f.timeout = retryTimeout(ack, f.tries)
	c.surbs[id] = &surbEntry{kind: surbACK, keys: keys, expires: now.Add(2 * f.timeout), frag: f, mixes: f.mixes}
	return slotPacket{hop: c.cfg.ProviderID, pkt: pkt, epoch: e}, nil
}

// retryTimeout is the ACK timeout of a fragment's try after tries earlier
// ones: base doubled per try, capped, plus up to a quarter of jitter.
// Doubling rides out a recipient's provider that is down for minutes
// without spending every try in its first seconds.
func retryTimeout(base time.Duration, tries int) time.Duration {
	d := maxRetransmitTimeout
	if tries < 20 {
		if s := base << tries; s > 0 && s < d {
			d = s
		}
	}
	return d + rand.N(d/4+1)
}

// sentFragment books a fragment the provider accepted (under c.mu).
func (c *Client) sentFragment(f *outFragment, now time.Time) {
	m := f.msg
	f.tries++
	m.packets++
	c.stats.FragmentsSent++
	if m.final() || f.acked {
		return
	}
	f.inFlight = true
	f.deadline = now.Add(f.timeout)
	if f.tries > 1 {
		c.stats.Retransmissions++
		return
	}
	m.sent++
	if m.sent == len(m.frags) && m.state == StateQueued {
		m.state = StateSent
		c.stats.MessagesSent++
	}
	c.changed()
}

func (c *Client) buildLoop(v *view, e uint64, now time.Time) ([32]byte, []byte, error) {
	loopID, err := randID16(c.entropy)
	if err != nil {
		return [32]byte{}, nil, err
	}
	plain := fragmentPlain{kind: kindLoop, id: loopID, count: 1}
	body, err := sealBody(c.msgPub, &plain, v.geo.UserForwardPayloadLength)
	if err != nil {
		return [32]byte{}, nil, err
	}
	id, err := c.newSURBID()
	if err != nil {
		return [32]byte{}, nil, err
	}
	// Loops choose uniformly, suspects included: that is how a suspect
	// clears its name, and what makes loops a fair sample of the network.
	surb, keys, ackMixes, err := c.makeSURB(v, e, false, now, &sphinx.SURBReply{ID: id}, &sphinx.Recipient{ID: c.ownMailbox})
	if err != nil {
		return [32]byte{}, nil, err
	}
	pkt, fwdMixes, err := c.buildForward(v, e, c.gateway(v), c.ownMailbox, surb, body, false, now)
	if err != nil {
		clear(keys)
		return [32]byte{}, nil, err
	}
	_, lb, la := c.timeouts(v)
	c.loops[loopID] = &loopProbe{sent: now, fwdMixes: fwdMixes, ackMixes: ackMixes,
		bodyDeadline: now.Add(lb), ackDeadln: now.Add(la)}
	c.surbs[id] = &surbEntry{kind: surbLoopACK, keys: keys, expires: now.Add(2 * la), loop: loopID}
	c.stats.LoopsSent++
	return c.cfg.ProviderID, pkt, nil
}

func (c *Client) buildDrop(v *view, e uint64, now time.Time) ([32]byte, []byte, error) {
	dest, err := v.topo.Provider(c.rnd)
	if err != nil {
		return [32]byte{}, nil, err
	}
	body := make([]byte, v.geo.UserForwardPayloadLength)
	if _, err := io.ReadFull(c.entropy, body); err != nil {
		return [32]byte{}, nil, err
	}
	pkt, _, err := c.buildForward(v, e, dest, clientproto.DropRecipient, nil, body, false, now)
	if err != nil {
		return [32]byte{}, nil, err
	}
	c.stats.DropsSent++
	return c.cfg.ProviderID, pkt, nil
}
