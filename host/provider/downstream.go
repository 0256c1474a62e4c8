package provider

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/pkidoc"
	"github.com/sottonet/sotto/core/topology"
	"github.com/sottonet/sotto/interfaces"
)

// The pushed downstream (docs/SPEC.md, "Pushed downstream"): a stream
// whose first request is a Subscribe becomes a downstream. The provider
// writes one push frame of one length every interval, exactly k slots,
// real messages first; the client writes one Pulse every interval, whose
// acknowledgements the provider applies. Nothing on the stream depends on
// what arrives, so its shape tells an observer of the link nothing but the
// cadence and that the client is online.

// shape is a downstream's cadence, slots and slot length, from the
// provider's current document.
type shape struct {
	interval   time.Duration
	slots      int
	slotLength int
}

// shapeCache keeps the shape of the last document parsed, so that a
// subscription does not verify every descriptor of the document again.
type shapeCache struct {
	mu   sync.Mutex
	hash [32]byte
	sh   shape
}

func (s *Service) downstreamShape(ctx context.Context) (shape, error) {
	raw, err := s.document(ctx, clientproto.CurrentEpoch)
	if err != nil {
		return shape{}, err
	}
	h := sha256.Sum256(raw)
	s.shapes.mu.Lock()
	defer s.shapes.mu.Unlock()
	if h == s.shapes.hash && s.shapes.sh.slots > 0 {
		return s.shapes.sh, nil
	}
	doc, err := pkidoc.ParseDocument(raw)
	if err != nil {
		return shape{}, fmt.Errorf("current document: %w", err)
	}
	g, err := topology.Geometry(&doc.Params)
	if err != nil {
		return shape{}, fmt.Errorf("current document's geometry: %w", err)
	}
	iv, k := doc.Params.Downstream()
	sh := shape{interval: iv, slots: k, slotLength: clientproto.SlotLength(g)}
	s.shapes.hash, s.shapes.sh = h, sh
	return sh, nil
}

// subscription is the state of one downstream.
type subscription struct {
	c     *clientStream
	sh    shape
	id    uint32
	acked atomic.Uint64 // the last Pulse whose acks are applied

	mu      sync.Mutex
	cursors []clientproto.Cursor // own first
	queue   []clientproto.Pushed // fetched, not yet pushed
	next    int                  // the mailbox the next refill starts with
	// dirty are the mailboxes that may hold entries above their cursor:
	// the node said it stored there (Stored), or a fetch filled its limit.
	// Every sweepInterval all are fetched anyway, for entries stored
	// behind the node's back (another process sharing the storage).
	// dirtyMu is a leaf lock: Stored takes it under the service's
	// watchMu, so nothing may wait for sub.mu or storage while holding it.
	dirtyMu sync.Mutex
	dirty   map[clientproto.MailboxRef]bool
	sweep   time.Time
}

func (sub *subscription) setDirty(ref clientproto.MailboxRef, on bool) {
	sub.dirtyMu.Lock()
	if on {
		sub.dirty[ref] = true
	} else {
		delete(sub.dirty, ref)
	}
	sub.dirtyMu.Unlock()
}

// takeDirty reports whether ref was dirty, and clears it.
func (sub *subscription) takeDirty(ref clientproto.MailboxRef) bool {
	sub.dirtyMu.Lock()
	defer sub.dirtyMu.Unlock()
	d := sub.dirty[ref]
	delete(sub.dirty, ref)
	return d
}

// sweepInterval is how often a downstream fetches every mailbox it
// watches, whether or not the node said something arrived there. A
// variable only so that a test can tell a wake from a sweep on a slow
// machine.
var sweepInterval = time.Second

// Stored tells the service that the node stored messages in mailboxes, so
// that the downstreams watching them fetch at their next frame instead of
// at their next sweep. It does not block on storage.
func (s *Service) Stored(mailboxes ...interfaces.MailboxID) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for _, m := range mailboxes {
		for sub, ref := range s.watching[clientproto.MailboxID(m)] {
			sub.setDirty(ref, true)
		}
	}
}

// watch registers (on) or unregisters sub as watching the mailbox of ref.
func (s *Service) watch(sub *subscription, ref clientproto.MailboxRef, on bool) {
	id := s.mailbox(sub.c, ref)
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	w := s.watching[id]
	if on {
		if w == nil {
			w = map[*subscription]clientproto.MailboxRef{}
			s.watching[id] = w
		}
		w[sub] = ref
		return
	}
	delete(w, sub)
	if len(w) == 0 {
		delete(s.watching, id)
	}
}

// maxSubscriptionMailboxes bounds the mailboxes of one subscription,
// changes by Pulse included.
const maxSubscriptionMailboxes = clientproto.SubscribeEntries

// subscribe serves a Subscribe: it answers an error reply if the stream
// cannot be a downstream (the caller keeps serving it as a request
// stream, false), else turns the stream into the downstream until it ends
// (true).
func (c *clientStream) subscribe(ctx context.Context, r *deadlineReader, req *clientproto.Request) bool {
	s := c.svc
	refuse := func(code clientproto.Code, msg string) bool {
		s.m.request(req.Op, code, 0)
		c.reply(&clientproto.Response{ID: req.ID, Op: req.Op, Code: code, Message: msg}, 0)
		return false
	}
	if !c.authenticated {
		return refuse(clientproto.CodeForbidden, "client key is not Ed25519")
	}
	sctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	sh, err := s.downstreamShape(sctx)
	cancel()
	if err != nil {
		resp := s.errorReply(c, req, err)
		return refuse(resp.Code, resp.Message)
	}
	sub := &subscription{c: c, sh: sh, id: req.ID, dirty: map[clientproto.MailboxRef]bool{}}
	for _, cur := range req.Cursors {
		sub.add(cur)
	}
	defer func() {
		sub.mu.Lock()
		cursors := slices.Clone(sub.cursors)
		sub.mu.Unlock()
		for _, cur := range cursors {
			s.watch(sub, cur.Mailbox, false)
		}
	}()
	s.m.request(req.Op, clientproto.CodeOK, 0)
	// The previous downstream of the client, if any, is replaced: after a
	// reconnection the old one may linger half-open.
	s.mu.Lock()
	old := s.downstreams[c.client]
	s.downstreams[c.client] = c
	s.mu.Unlock()
	if old != nil {
		_ = old.st.Reset()
	}
	defer func() {
		s.mu.Lock()
		if s.downstreams[c.client] == c {
			delete(s.downstreams, c.client)
		}
		s.mu.Unlock()
	}()
	s.m.downstreams.Inc()
	defer s.m.downstreams.Dec()

	ctx, cancel = context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer cancel()
		sub.push(ctx)
	})
	sub.readPulses(ctx, r)
	cancel()
	wg.Wait()
	c.reset("downstream")
	return true
}

// add puts a mailbox into the subscription, or moves its cursor forward.
func (sub *subscription) add(cur clientproto.Cursor) {
	for i := range sub.cursors {
		if sub.cursors[i].Mailbox == cur.Mailbox {
			sub.cursors[i].After = max(sub.cursors[i].After, cur.After)
			return
		}
	}
	if len(sub.cursors) < maxSubscriptionMailboxes {
		sub.cursors = append(sub.cursors, clientproto.Cursor{Mailbox: cur.Mailbox, After: cur.After})
		sub.setDirty(cur.Mailbox, true)
		sub.c.svc.watch(sub, cur.Mailbox, true)
	}
}

func (sub *subscription) remove(m clientproto.MailboxRef) {
	if !m.SURB {
		return
	}
	for i := range sub.cursors {
		if sub.cursors[i].Mailbox == m {
			sub.cursors = append(sub.cursors[:i], sub.cursors[i+1:]...)
			sub.setDirty(m, false)
			sub.c.svc.watch(sub, m, false)
			break
		}
	}
	kept := sub.queue[:0]
	for _, p := range sub.queue {
		if p.Mailbox != m {
			kept = append(kept, p)
		}
	}
	sub.queue = kept
}

// readPulses applies the client's Pulses until the stream ends. A stream
// that sends anything else, or nothing for a long while, is reset.
func (sub *subscription) readPulses(ctx context.Context, r *deadlineReader) {
	c := sub.c
	s := c.svc
	// Pulses come every interval; a long silence is a dead client.
	r.idle = max(20*sub.sh.interval, s.cfg.RequestTimeout)
	for ctx.Err() == nil {
		r.start()
		body, err := clientproto.ReadFrame(r, nil, clientproto.MaxRequestLength)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				s.log.Debug("downstream ended", "peer", c.client, "err", err)
			}
			return
		}
		var req clientproto.Request
		if err := req.Decode(body); err != nil || req.Op != clientproto.OpPulse {
			s.logGarbage(c.client, fmt.Errorf("on a downstream: op %v: %w", req.Op, err))
			return
		}
		c.touch()
		if err := sub.apply(ctx, &req); err != nil {
			// The client sends the acks again on its next downstream.
			s.log.Warn("applying a pulse's acks; downstream reset", "peer", c.client, "err", err)
			return
		}
	}
}

// apply applies one Pulse: its changes to the subscription, then its
// acknowledgements, and records it as applied once storage has them.
func (sub *subscription) apply(ctx context.Context, req *clientproto.Request) error {
	s := sub.c.svc
	sub.mu.Lock()
	for _, ch := range req.Changes {
		if ch.Remove {
			sub.remove(ch.Mailbox)
		} else {
			sub.add(ch)
		}
	}
	sub.mu.Unlock()
	byBox := map[clientproto.MailboxRef][]uint64{}
	var order []clientproto.MailboxRef
	for _, a := range req.Acks {
		if _, ok := byBox[a.Mailbox]; !ok {
			order = append(order, a.Mailbox)
		}
		byBox[a.Mailbox] = append(byBox[a.Mailbox], a.ID)
	}
	for _, m := range order {
		actx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		err := s.ack(actx, sub.c, &clientproto.Request{Op: clientproto.OpAck, Mailbox: m, IDs: byBox[m]})
		cancel()
		if err != nil {
			return err
		}
	}
	if len(req.Acks) > 0 {
		s.m.pushAcks.Add(float64(len(req.Acks)))
	}
	if req.Seq > sub.acked.Load() {
		sub.acked.Store(req.Seq)
	}
	return nil
}

// push writes one frame every interval until ctx ends or a write fails.
// The frame is assembled a little before it is due (lead), so that when
// it leaves does not depend on how long storage took to fill it; a late
// frame does not make the next one come sooner (missed ticks are
// skipped), so a backlog drains at the cadence, never faster.
func (sub *subscription) push(ctx context.Context) {
	c := sub.c
	s := c.svc
	iv := sub.sh.interval
	// A storage fetch takes well under a millisecond; the lead adds to
	// the wait of a message that arrives just before a frame leaves.
	lead := min(iv/4, 5*time.Millisecond)
	due := time.Now().Add(iv)
	var seq uint64
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		t.Reset(time.Until(due.Add(-lead)))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sub.refill(ctx)
		seq++
		msgs := sub.take()
		frame, err := (&clientproto.Response{ID: sub.id, Op: clientproto.OpSubscribe, Push: &clientproto.Push{
			Seq: seq, Acked: sub.acked.Load(), SlotLength: sub.sh.slotLength, Slots: sub.sh.slots, Messages: msgs,
		}}).AppendFrame(make([]byte, 0, clientproto.PushFrameLength(sub.sh.slots, sub.sh.slotLength)))
		if err != nil {
			s.log.Error("cannot encode a push frame", "err", err)
			return
		}
		t.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.writeMu.Lock()
		_ = c.st.SetWriteDeadline(time.Now().Add(s.cfg.RequestTimeout))
		_, err = c.st.Write(frame)
		if err != nil {
			c.broken = true
		}
		c.writeMu.Unlock()
		if err != nil {
			s.log.Debug("writing a push frame failed", "peer", c.client, "err", err)
			return
		}
		s.m.pushFrames.Inc()
		s.m.pushSlots.WithLabelValues("message").Add(float64(len(msgs)))
		s.m.pushSlots.WithLabelValues("dummy").Add(float64(sub.sh.slots - len(msgs)))
		for now := time.Now(); !due.After(now); {
			due = due.Add(iv)
		}
	}
}

// take removes up to k messages from the queue for the next frame.
func (sub *subscription) take() []clientproto.Pushed {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	n := min(len(sub.queue), sub.sh.slots)
	msgs := append([]clientproto.Pushed(nil), sub.queue[:n]...)
	sub.queue = sub.queue[n:]
	return msgs
}

// refill fetches from the subscribed mailboxes, starting with a different
// one each time so that none starves, while the queue holds fewer than
// k messages. Cursors move past what is queued (and past unreadable or
// oversized entries, which are left in storage to expire).
func (sub *subscription) refill(ctx context.Context) {
	s := sub.c.svc
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if len(sub.queue) >= sub.sh.slots || len(sub.cursors) == 0 {
		return
	}
	if now := time.Now(); !now.Before(sub.sweep) {
		sub.sweep = now.Add(sweepInterval)
		for _, cur := range sub.cursors {
			sub.setDirty(cur.Mailbox, true)
		}
	}
	start := sub.next % len(sub.cursors)
	sub.next++
	for i := range len(sub.cursors) {
		if len(sub.queue) >= sub.sh.slots {
			return
		}
		cur := &sub.cursors[(start+i)%len(sub.cursors)]
		if !sub.takeDirty(cur.Mailbox) {
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		res, err := s.cfg.Mailboxes.FetchMailbox(fctx, &interfaces.FetchMailboxRequest{
			Mailbox: s.mailbox(sub.c, cur.Mailbox), After: cur.After, Limit: sub.sh.slots, MaxBytes: s.cfg.FetchBytes,
		})
		cancel()
		if err != nil || res == nil {
			sub.setDirty(cur.Mailbox, true)
			if ctx.Err() == nil {
				s.log.Warn("fetching for a downstream", "peer", sub.c.client, "err", err)
			}
			return
		}
		if len(res.Entries) >= sub.sh.slots {
			sub.setDirty(cur.Mailbox, true) // more may wait
		}
		var corrupt int
		for _, e := range res.Entries {
			if e.ID <= cur.After {
				s.log.Warn("storage returned entries out of order", "peer", sub.c.client)
				break
			}
			cur.After = e.ID
			sm, err := clientproto.ParseStored(e.Payload)
			if err != nil || len(e.Payload) > sub.sh.slotLength {
				corrupt++
				continue
			}
			sub.queue = append(sub.queue, clientproto.Pushed{Mailbox: cur.Mailbox,
				Message: clientproto.Message{ID: e.ID, Expires: e.Expires, StoredMessage: sm}})
		}
		if corrupt > 0 {
			s.m.corruptEntries.Add(float64(corrupt))
		}
	}
}
