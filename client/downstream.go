// Receiving through the pushed downstream (docs/SPEC.md, "Pushed
// downstream"): the provider pushes one frame of one size every interval,
// the client answers with one pulse of one size every interval, so the
// link shows neither when nor how much the client receives, nor how many
// mailboxes it watches.

package client

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
)

// errResubscribe ends a downstream so that a new one starts from the
// client's cursors: pushed messages were set aside while the application's
// inbox was full.
var errResubscribe = errors.New("client: inbox had no room; subscribing again")

// pushAckFactor: a pulse carries acknowledgements for up to this many
// frames' worth of messages, so that acks held back (until the application
// is Done, without a Store) drain faster than they pile up.
const pushAckFactor = 2

// downstreamLoop receives through the pushed downstream for as long as
// the link carries one. It returns, leaving the fetch loop to poll, only
// if the provider does not know the operation.
func (c *Client) downstreamLoop(ctx context.Context, s Subscriber) {
	defer c.pushing.Store(false)
	bo := backoff{min: 200 * time.Millisecond, max: fetchBackoffMax}
	for ctx.Err() == nil {
		began := time.Now()
		err := c.downstream(ctx, s)
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, clientproto.ErrUnsupported):
			c.log.Warn("the provider has no pushed downstream; polling mailboxes instead, which shows an observer of the link when and how much arrives", "err", err)
			return
		case errors.Is(err, errResubscribe):
			continue
		case time.Since(began) > time.Minute:
			bo.reset()
		}
		wait := bo.next()
		c.log.Debug("downstream ended; subscribing again", "retry_in", wait.Round(time.Millisecond), "err", err)
		if !sleep(ctx, wait) {
			return
		}
	}
}

// subscribedRefs lists the mailboxes to subscribe (under c.mu): the own
// mailbox, then the SURB mailboxes still live, latest expiry first, as
// many as a subscription holds.
func (c *Client) subscribedRefs(now time.Time) []clientproto.MailboxRef {
	type live struct {
		cp      [16]byte
		expires time.Time
	}
	var ls []live
	for cp, mb := range c.surbMailboxes {
		if now.Before(mb.expires) {
			ls = append(ls, live{cp, mb.expires})
		}
	}
	slices.SortFunc(ls, func(a, b live) int { return b.expires.Compare(a.expires) })
	refs := []clientproto.MailboxRef{{}}
	for _, l := range ls {
		if len(refs) == clientproto.SubscribeEntries {
			break
		}
		refs = append(refs, clientproto.MailboxRef{SURB: true, Capability: l.cp})
	}
	return refs
}

// pushSession is the client's side of one downstream.
type pushSession struct {
	d          Downstream
	ackSlots   int
	interval   time.Duration
	mu         sync.Mutex
	subscribed map[clientproto.MailboxRef]bool
	sent       map[uint64][]pendingAck // acks of pulses not yet applied, by seq
}

// downstream runs one downstream until it breaks.
func (c *Client) downstream(ctx context.Context, s Subscriber) error {
	now := time.Now()
	c.mu.Lock()
	v, _, err := c.routeView(now)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	interval, k := v.doc.Params.Downstream()
	refs := c.subscribedRefs(now)
	cursors := make([]clientproto.Cursor, len(refs))
	for i, r := range refs {
		cursors[i] = clientproto.Cursor{Mailbox: r, After: c.after[r]}
	}
	c.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, callTimeout)
	d, err := s.Subscribe(sctx, cursors)
	cancel()
	c.observe(ctx, err)
	if err != nil {
		return err
	}
	defer d.Close()
	ps := &pushSession{d: d, interval: interval, ackSlots: min(pushAckFactor*k, clientproto.MaxPulseAcks),
		subscribed: map[clientproto.MailboxRef]bool{}, sent: map[uint64][]pendingAck{}}
	for _, r := range refs {
		ps.subscribed[r] = true
	}
	c.mu.Lock()
	c.stats.Subscriptions++
	c.mu.Unlock()
	c.log.Debug("subscribed to the pushed downstream", "interval", interval, "k", k, "mailboxes", len(cursors))
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	wg.Go(func() { stop(c.pulses(ctx, ps)) })
	err = c.receivePushes(ctx, ps)
	stop(err)
	wg.Wait()
	// What was acknowledged in pulses not known to be applied goes again.
	ps.mu.Lock()
	c.mu.Lock()
	for _, acks := range ps.sent {
		for _, a := range acks {
			a.gen = 0
			c.acks = append(c.acks, a)
		}
	}
	c.mu.Unlock()
	ps.mu.Unlock()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// pulses writes one pulse every interval, on its own clock: when it
// leaves does not depend on what arrived.
func (c *Client) pulses(ctx context.Context, ps *pushSession) error {
	t := time.NewTicker(ps.interval)
	defer t.Stop()
	var seq uint64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		seq++
		req := &clientproto.Request{Op: clientproto.OpPulse, Seq: seq, AckSlots: ps.ackSlots}
		ps.mu.Lock()
		c.mu.Lock()
		acks := c.takeAcks(ps.ackSlots)
		req.Changes = c.subscriptionChanges(ps, time.Now())
		c.stats.Pulses++
		c.mu.Unlock()
		if len(acks) > 0 {
			ps.sent[seq] = acks
		}
		ps.mu.Unlock()
		for _, a := range acks {
			req.Acks = append(req.Acks, clientproto.EntryAck{Mailbox: a.ref, ID: a.id})
		}
		pctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := ps.d.Pulse(pctx, req)
		cancel()
		if err != nil {
			return err
		}
	}
}

// takeAcks removes up to n acknowledgements whose state is saved from
// c.acks (under c.mu).
func (c *Client) takeAcks(n int) []pendingAck {
	var ready []pendingAck
	kept := c.acks[:0]
	for _, a := range c.acks {
		if len(ready) < n && (c.store == nil || a.gen <= c.savedGen) {
			ready = append(ready, a)
		} else {
			kept = append(kept, a)
		}
	}
	c.acks = kept
	return ready
}

// subscriptionChanges is what the next pulse changes in the subscription
// (under ps.mu and c.mu): SURB mailboxes made or expired since, removals
// first, at most clientproto.PulseChanges.
func (c *Client) subscriptionChanges(ps *pushSession, now time.Time) []clientproto.Cursor {
	want := map[clientproto.MailboxRef]bool{}
	for _, r := range c.subscribedRefs(now) {
		want[r] = true
	}
	var ch []clientproto.Cursor
	for r := range ps.subscribed {
		if r.SURB && !want[r] && len(ch) < clientproto.PulseChanges {
			ch = append(ch, clientproto.Cursor{Mailbox: r, Remove: true})
			delete(ps.subscribed, r)
		}
	}
	for r := range want {
		if !ps.subscribed[r] && len(ch) < clientproto.PulseChanges {
			ch = append(ch, clientproto.Cursor{Mailbox: r, After: c.after[r]})
			ps.subscribed[r] = true
		}
	}
	return ch
}

// receivePushes files what every push frame carries, as a fetch does,
// until the downstream breaks.
func (c *Client) receivePushes(ctx context.Context, ps *pushSession) error {
	stale := false
	for {
		push, err := ps.d.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.observe(ctx, err)
			}
			return err
		}
		ps.mu.Lock()
		for seq := range ps.sent {
			if seq <= push.Acked {
				delete(ps.sent, seq)
			}
		}
		ps.mu.Unlock()
		now := time.Now()
		var (
			finished []MessageStatus
			batch    []pendingAck
			kept     bool
		)
		c.mu.Lock()
		c.stats.PushFrames++
		c.stats.PushSlots += uint64(push.Slots)
		c.stats.PushMessages += uint64(len(push.Messages))
		if len(push.Messages) > 0 && c.inboxFull() {
			// Set aside: the provider pushes them again to the next
			// subscription, which starts from the cursors.
			stale = true
			c.mu.Unlock()
			continue
		}
		if stale && !c.inboxFull() {
			c.mu.Unlock()
			return errResubscribe
		}
		for _, m := range push.Messages {
			if m.ID <= c.after[m.Mailbox] {
				continue // pushed before (a provider at fault)
			}
			c.after[m.Mailbox] = m.ID
			r := c.consume(m.StoredMessage, now)
			finished = append(finished, r.finished...)
			c.settle(entryRef{m.Mailbox, m.ID}, r.msg, &batch)
			kept = kept || r.kept
		}
		if kept {
			c.changed()
			for i := range batch {
				batch[i].gen = c.gen
			}
		}
		c.acks = append(c.acks, batch...)
		c.mu.Unlock()
		c.report(finished)
		if kept {
			if err := c.persist(); err != nil {
				// The entries stay unacknowledged; a later save covers them.
				c.log.Warn("saving the state; pushed messages stay at the provider", "err", err)
			}
		}
	}
}
