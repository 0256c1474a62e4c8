package client

import (
	"bytes"
	"crypto/hpke"
	"fmt"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/sphinx"
)

// consume handles one mailbox entry (under c.mu): a loop or a fragment
// for this client, or a SURB reply (an ACK, a loop's ACK, or a message sent
// through one of its contacts). It returns a message it completed and the
// statuses of messages that reached a final state. Entries that do not
// decode are counted and dropped; nothing here trusts the bytes.
func (c *Client) consume(m clientproto.StoredMessage, now time.Time) (*Message, []MessageStatus) {
	c.stats.Fetched++
	if !m.Reply {
		return c.receiveBody(c.msgKey, m.Payload, now, false), nil
	}
	e, ok := c.surbs[m.SURBID]
	if !ok {
		c.stats.UnknownSURBs++
		return nil, nil
	}
	body := bytes.Clone(m.Payload)
	pt, err := sphinx.DecryptSURBPayload(body, e.keys)
	if err != nil {
		c.stats.Malformed++
		return nil, nil
	}
	switch e.kind {
	case surbACK:
		return nil, c.ackFragment(e, now)
	case surbLoopACK:
		if p, ok := c.loops[e.loop]; ok && !p.ackBack {
			p.ackBack = true
			c.markOK(p.ackMixes, now)
		}
		return nil, nil
	default:
		// A contact SURB is single use: forget its keys.
		delete(c.surbs, m.SURBID)
		clear(e.keys)
		g, err := sphinx.NewGeometry(e.payloadLen, e.hops, true)
		if err != nil {
			c.stats.Malformed++
			return nil, nil
		}
		_, b, err := clientproto.SplitForward(g, pt)
		if err != nil {
			c.stats.Malformed++
			return nil, nil
		}
		if e.msgKey == nil {
			c.stats.Malformed++
			return nil, nil
		}
		return c.receiveBody(e.msgKey, b, now, true), nil
	}
}

// receiveBody decrypts a forward body and files the fragment or loop in it.
func (c *Client) receiveBody(key hpke.PrivateKey, body []byte, now time.Time, viaSURB bool) *Message {
	f, err := openBody(key, body)
	if err != nil {
		c.stats.Malformed++
		return nil
	}
	if f.kind == kindLoop {
		if viaSURB {
			c.stats.Malformed++
			return nil
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
		return nil
	}
	if _, done := c.done[f.id]; done {
		c.stats.Duplicates++
		return nil
	}
	r, ok := c.inbox[f.id]
	if ok && r.count != f.count {
		c.stats.Malformed++
		return nil
	}
	if ok {
		if _, dup := r.frags[f.index]; dup {
			c.stats.Duplicates++
			return nil
		}
	}
	// Bound reassembly by messages and by bytes, counting this fragment,
	// evicting the oldest other messages first.
	if !c.makeRoom(f.id, !ok, len(f.data)) {
		c.stats.ReassemblyEvicted++
		return nil
	}
	if !ok {
		r = &reassembly{count: f.count, frags: map[int][]byte{}, first: now}
		c.inbox[f.id] = r
	}
	r.frags[f.index] = bytes.Clone(f.data)
	c.inboxBytes += len(f.data)
	r.viaSURB = r.viaSURB || viaSURB
	if len(r.frags) < r.count {
		return nil
	}
	msg := &Message{ID: f.id, Received: now, ViaSURB: r.viaSURB}
	for i := range r.count {
		msg.Body = append(msg.Body, r.frags[i]...)
	}
	c.dropReassembly(f.id)
	if len(c.done) >= maxDone {
		c.pruneDone(now, true)
	}
	c.done[f.id] = now.Add(doneTTL)
	c.stats.MessagesDelivered++
	return msg
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

func (c *Client) dropReassembly(id MessageID) {
	if r, ok := c.inbox[id]; ok {
		c.inboxBytes -= r.size()
		delete(c.inbox, id)
	}
}

func (c *Client) pruneDone(now time.Time, half bool) {
	for id, exp := range c.done {
		if now.After(exp) || (half && len(c.done) >= maxDone/2) {
			delete(c.done, id)
		}
	}
}

// ackFragment records the provider's acknowledgement of a fragment.
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
	if m.acked < len(m.frags) {
		return nil
	}
	if m.state == StateQueued {
		// Every fragment was sent (it was acknowledged), whatever order
		// the bookkeeping saw it in.
		c.stats.MessagesSent++
	}
	m.state = StateAcked
	c.stats.MessagesAcked++
	c.stats.addLatency(now.Sub(m.queued))
	return []MessageStatus{c.finish(m, now)}
}

func (c *Client) finish(m *outgoing, now time.Time) MessageStatus {
	m.finished = now
	for _, f := range m.frags {
		f.data, f.surb = nil, nil
		f.inFlight = false
	}
	return m.status()
}

func (c *Client) fail(m *outgoing, err error, now time.Time) MessageStatus {
	if m.final() {
		return m.status()
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
	return c.finish(m, now)
}

// maintain runs timeouts (under c.mu): unacknowledged fragments are
// resent or fail their message, overdue loops count as lost, expired SURB
// keys and mailboxes are forgotten.
func (c *Client) maintain(now time.Time) []MessageStatus {
	var finished []MessageStatus
	for id, m := range c.out {
		if m.final() {
			if now.Sub(m.finished) > finishedTTL {
				delete(c.out, id)
			}
			continue
		}
		for _, f := range m.frags {
			if !f.inFlight || f.acked || !now.After(f.deadline) {
				continue
			}
			f.inFlight = false
			c.markLost(f.mixes, now, false)
			if f.tries >= c.cfg.MaxTries {
				err := fmt.Errorf("%w: fragment %d of %d after %d tries", ErrUnacknowledged, f.index+1, len(m.frags), f.tries)
				c.log.Info("message failed", "id", m.id, "err", err)
				finished = append(finished, c.fail(m, err, now))
				break
			}
			c.requeueFront(f)
		}
	}
	for id, p := range c.loops {
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
		}
	}
	for cp, exp := range c.surbMailboxes {
		if now.After(exp) {
			delete(c.surbMailboxes, cp)
			delete(c.after, clientproto.MailboxRef{SURB: true, Capability: cp})
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
