package client

import (
	"bytes"
	"crypto/hpke"
	"fmt"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/sphinx"
)

// consumed is what filing one mailbox entry did.
type consumed struct {
	// msg is the incoming message the entry carried part of (also for a
	// duplicate), nil for loops, ACKs and what did not decode.
	msg *MessageID
	// kept: the state changed in a way that must be saved before the
	// entry is acknowledged (a fragment filed, a message completed, a
	// contact SURB spent).
	kept bool
	// finished are the outgoing messages that reached a final state.
	finished []MessageStatus
}

// consume handles one mailbox entry (under c.mu): a loop or a fragment
// for this client, or a SURB reply (an ACK, a loop's ACK, an end-to-end
// ACK, or a message sent through one of its contacts). A message it
// completes goes to the application's queue (deliver). Entries that do not
// decode are counted and dropped; nothing here trusts the bytes.
func (c *Client) consume(m clientproto.StoredMessage, now time.Time) consumed {
	c.stats.Fetched++
	if !m.Reply {
		return c.receiveBody(c.msgKey, m.Payload, now, nil)
	}
	e, ok := c.surbs[m.SURBID]
	if !ok {
		c.stats.UnknownSURBs++
		return consumed{}
	}
	body := bytes.Clone(m.Payload)
	pt, err := sphinx.DecryptSURBPayload(body, e.keys)
	if err != nil {
		c.stats.Malformed++
		return consumed{}
	}
	switch e.kind {
	case surbACK, surbE2E:
		return consumed{finished: c.ackFragment(e, now)}
	case surbLoopACK:
		if p, ok := c.loops[e.loop]; ok && !p.ackBack {
			p.ackBack = true
			c.markOK(p.ackMixes, now)
		}
		return consumed{}
	default:
		// A contact SURB is single use: forget its keys.
		delete(c.surbs, m.SURBID)
		clear(e.keys)
		g, err := sphinx.NewGeometry(e.payloadLen, e.hops, true)
		if err != nil {
			c.stats.Malformed++
			return consumed{kept: true}
		}
		replySURB, b, err := clientproto.SplitForward(g, pt)
		if err != nil || e.msgKey == nil {
			c.stats.Malformed++
			return consumed{kept: true}
		}
		r := c.receiveBody(e.msgKey, b, now, e)
		r.kept = true
		if r.msg != nil && replySURB != nil {
			// The sender asks for an end-to-end acknowledgement: answer
			// through its SURB once the fragment is saved.
			c.queueReply(g, replySURB)
		}
		return r
	}
}

// receiveBody decrypts a forward body and files the fragment or loop in
// it; via is the contact SURB it came through, if any.
func (c *Client) receiveBody(key hpke.PrivateKey, body []byte, now time.Time, via *surbEntry) consumed {
	f, err := openBody(key, body)
	if err != nil {
		c.stats.Malformed++
		return consumed{}
	}
	if f.kind == kindLoop {
		if via != nil {
			c.stats.Malformed++
			return consumed{}
		}
		p, ok := c.loops[f.id]
		switch {
		case !ok:
			c.stats.UnknownLoops++
		case p.bodyBack:
		case p.bodyLost:
			p.bodyBack = true
			c.stats.LoopsLate++
		default:
			p.bodyBack = true
			c.stats.LoopsReturned++
			c.markOK(p.fwdMixes, now)
		}
		return consumed{}
	}
	id := f.id
	if _, done := c.done[f.id]; done {
		c.stats.Duplicates++
		return consumed{msg: &id}
	}
	r, ok := c.inbox[f.id]
	if ok && (r.count != f.count || r.sealed != (f.kind == kindSealed)) {
		c.stats.Malformed++
		return consumed{}
	}
	if ok {
		if _, dup := r.frags[f.index]; dup {
			c.stats.Duplicates++
			return consumed{msg: &id}
		}
	}
	// Bound reassembly by messages and by bytes, counting this fragment,
	// evicting the oldest other messages first.
	if !c.makeRoom(f.id, !ok, len(f.data)) {
		c.stats.ReassemblyEvicted++
		return consumed{}
	}
	if !ok {
		r = &reassembly{count: f.count, frags: map[int][]byte{}, first: now, sealed: f.kind == kindSealed}
		c.inbox[f.id] = r
	}
	r.frags[f.index] = bytes.Clone(f.data)
	c.inboxBytes += len(f.data)
	if via != nil {
		r.viaSURB = true
		r.contact = via.label
	}
	if len(r.frags) < r.count {
		return consumed{msg: &id, kept: true}
	}
	msg := &Message{ID: f.id, Received: now, ViaSURB: r.viaSURB, Contact: r.contact}
	for i := range r.count {
		msg.Body = append(msg.Body, r.frags[i]...)
	}
	c.inboxBytes -= r.size()
	delete(c.inbox, f.id)
	if len(c.done) >= maxDone {
		c.pruneDone(now, true)
	}
	c.done[f.id] = now.Add(doneTTL)
	if r.sealed {
		if err := c.openE2E(msg); err != nil {
			// Kept as done: its fragments are acknowledged and dropped.
			c.stats.Undecryptable++
			c.log.Warn("message dropped: the messaging layer did not open it", "id", msg.ID, "err", err)
			return consumed{msg: &id, kept: true}
		}
		c.stats.MessagesSealed++
	}
	c.stats.MessagesDelivered++
	c.deliver(msg)
	return consumed{msg: &id, kept: true}
}

// makeRoom evicts the oldest reassemblies other than keep until a fragment
// of need bytes (of a new message when isNew) fits the bounds. It reports
// false when it cannot (keep alone is over the byte bound).
func (c *Client) makeRoom(keep MessageID, isNew bool, need int) bool {
	for (isNew && len(c.inbox) >= maxPendingMessages) || c.inboxBytes+need > maxPendingBytes {
		var oldest MessageID
		var t time.Time
		found := false
		for id, r := range c.inbox {
			if id != keep && (!found || r.first.Before(t)) {
				oldest, t, found = id, r.first, true
			}
		}
		if !found {
			return false
		}
		c.dropReassembly(oldest)
		c.stats.ReassemblyEvicted++
	}
	return true
}

// dropReassembly gives up a partial message (evicted for room or age):
// what the provider still holds of it goes too.
func (c *Client) dropReassembly(id MessageID) {
	if r, ok := c.inbox[id]; ok {
		c.inboxBytes -= r.size()
		delete(c.inbox, id)
		c.release(id)
	}
}

func (c *Client) pruneDone(now time.Time, half bool) {
	for id, exp := range c.done {
		if now.After(exp) || (half && len(c.done) >= maxDone/2) {
			delete(c.done, id)
		}
	}
}

// ackFragment records an acknowledgement of a fragment: its recipient's
// provider's (surbACK) or its recipient's (surbE2E).
func (c *Client) ackFragment(e *surbEntry, now time.Time) []MessageStatus {
	f := e.frag
	if f == nil || f.acked {
		return nil
	}
	c.markOK(e.mixes, now)
	f.acked = true
	f.inFlight = false
	m := f.msg
	if m.final() {
		return nil
	}
	m.acked++
	c.stats.FragmentsAcked++
	c.changed()
	if m.acked < len(m.frags) {
		return nil
	}
	if m.state == StateQueued {
		// Every fragment was sent (it was acknowledged), whatever order
		// the bookkeeping saw it in.
		c.stats.MessagesSent++
	}
	if e.kind == surbE2E {
		m.state = StateDelivered
		c.stats.MessagesConfirmed++
	} else {
		m.state = StateAcked
		c.stats.MessagesAcked++
	}
	c.stats.addLatency(now.Sub(m.queued))
	return []MessageStatus{c.finish(m, now)}
}

func (c *Client) finish(m *outgoing, now time.Time) MessageStatus {
	m.finished = now
	for _, f := range m.frags {
		f.data, f.surb, f.pending = nil, nil, nil
		f.inFlight = false
	}
	c.changed()
	return m.status()
}

// fail ends m as failed and returns its status to report, or nothing if m
// had already ended: a message reaches one final state, reported once.
func (c *Client) fail(m *outgoing, err error, now time.Time) []MessageStatus {
	if m.final() {
		return nil
	}
	m.state = StateFailed
	m.err = err
	c.stats.MessagesFailed++
	for _, f := range m.frags {
		if f.inQueue {
			f.inQueue = false
			c.queued--
		}
	}
	return []MessageStatus{c.finish(m, now)}
}

// maintain runs timeouts (under c.mu): unacknowledged fragments are
// resent or fail their message, overdue loops count as lost, expired SURB
// keys and mailboxes are forgotten. While the client is not connected no
// fragment or loop is judged: nothing could come back.
func (c *Client) maintain(now time.Time) []MessageStatus {
	var finished []MessageStatus
	connected := c.conn.State == Connected
	for id, m := range c.out {
		if m.final() {
			if now.Sub(m.finished) > finishedTTL {
				delete(c.out, id)
			}
			continue
		}
		if !connected {
			continue
		}
		for _, f := range m.frags {
			if !f.inFlight || f.acked || !now.After(f.deadline) {
				continue
			}
			f.inFlight = false
			if m.to.Anonymous() {
				if f.tries >= min(c.cfg.MaxTries, maxSURBTries) {
					err := fmt.Errorf("%w: fragment %d of %d, %d SURBs tried", ErrNotDelivered, f.index+1, len(m.frags), f.tries)
					c.log.Info("message failed", "id", m.id, "err", err)
					finished = append(finished, c.fail(m, err, now)...)
					break
				}
				ss, err := c.takeSURBs(m.to, 1, now)
				if err != nil {
					err = fmt.Errorf("%w: fragment %d of %d, and no SURB left to try again: %w", ErrNotDelivered, f.index+1, len(m.frags), err)
					c.log.Info("message failed", "id", m.id, "err", err)
					finished = append(finished, c.fail(m, err, now)...)
					break
				}
				f.surb = ss[0]
				c.requeueFront(f)
				continue
			}
			c.markLost(f.mixes, now, false)
			if f.tries >= c.cfg.MaxTries {
				err := fmt.Errorf("%w: fragment %d of %d after %d tries", ErrUnacknowledged, f.index+1, len(m.frags), f.tries)
				c.log.Info("message failed", "id", m.id, "err", err)
				finished = append(finished, c.fail(m, err, now)...)
				break
			}
			c.requeueFront(f)
		}
	}
	for id, p := range c.loops {
		if !connected {
			break
		}
		if !p.bodyBack && !p.bodyLost && now.After(p.bodyDeadline) {
			p.bodyLost = true
			c.stats.LoopsLost++
			c.markLost(p.fwdMixes, now, true)
		}
		// The ACK leg is judged only when the body came back: otherwise
		// the provider never had the SURB.
		if p.bodyBack && !p.ackBack && !p.ackLost && now.After(p.ackDeadln) {
			p.ackLost = true
			c.stats.LoopACKsLost++
			c.markLost(p.ackMixes, now, true)
		}
		if (p.bodyLost || (p.bodyBack && (p.ackBack || p.ackLost))) && now.After(p.ackDeadln) {
			delete(c.loops, id)
		}
	}
	for id, e := range c.surbs {
		if now.After(e.expires) {
			clear(e.keys)
			delete(c.surbs, id)
			if e.kind == surbContact {
				c.changed()
			}
		}
	}
	for cp, mb := range c.surbMailboxes {
		if now.After(mb.expires) {
			delete(c.surbMailboxes, cp)
			delete(c.after, clientproto.MailboxRef{SURB: true, Capability: cp})
			c.changed()
		}
	}
	for fp, exp := range c.usedSURBs {
		if now.After(exp) {
			delete(c.usedSURBs, fp)
		}
	}
	for id, r := range c.inbox {
		if now.Sub(r.first) > reassemblyTimeout {
			c.dropReassembly(id)
			c.stats.ReassemblyEvicted++
			c.changed()
		}
	}
	c.pruneDone(now, false)
	return finished
}

func (c *Client) healthOf(id [32]byte) *mixHealth {
	h, ok := c.health[id]
	if !ok {
		h = &mixHealth{}
		c.health[id] = h
	}
	return h
}

func (c *Client) markLost(mixes [][32]byte, now time.Time, loop bool) {
	for _, id := range mixes {
		h := c.healthOf(id)
		h.lastLost = now
		h.lostStreak++
		if loop {
			h.loopsLost++
		}
	}
}

func (c *Client) markOK(mixes [][32]byte, now time.Time) {
	for _, id := range mixes {
		h := c.healthOf(id)
		h.lastOK, h.lostStreak = now, 0
	}
}

// suspect: a loss through the mix more recent than its last success, within
// SuspectFor.
func (c *Client) suspect(id [32]byte, now time.Time) bool {
	h, ok := c.health[id]
	return ok && h.lastLost.After(h.lastOK) && now.Sub(h.lastLost) < c.cfg.SuspectFor
}
