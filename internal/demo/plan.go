package demo

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/sottonet/sotto/client"
)

// plan sends the demo's messages and waits for them.
func (r *run) plan(ctx context.Context) error {
	a, b := r.alice, r.bob
	start := time.Now()
	extra := r.cfg.Messages - MinMessages
	killAt := time.Time{}
	if r.cfg.KillMixAfter > 0 {
		killAt = start.Add(r.cfg.KillMixAfter)
	}

	// Online phase: the fixed messages, then extras, one every SendGap.
	capacity, err := r.capacity()
	if err != nil {
		return err
	}
	type step func() error
	steps := []step{
		func() error { return r.sendForward(ctx, a, b, "forward", r.body("hello bob, alice here", 0)) },
		func() error { return r.sendForward(ctx, b, a, "forward", r.body("hi alice, bob here", 0)) },
		func() error {
			return r.sendForward(ctx, a, b, "long", r.body("a long letter that takes three packets", capacity*5/2))
		},
		func() error {
			return r.sendAnonymous(ctx, b, a, "anonymous", r.body("to a SURB mailbox: bob does not learn alice's provider", 0))
		},
	}
	for i := 0; ; i++ {
		if i >= len(steps) {
			more := extra > 0
			if r.cfg.Duration > 0 {
				more = time.Since(start) < r.cfg.Duration
			}
			if !more {
				break
			}
			extra--
			from, to := a, b
			if i%2 == 1 {
				from, to = b, a
			}
			size := r.rnd.IntN(capacity * 2)
			if err := r.sendForward(ctx, from, to, "forward", r.body(fmt.Sprintf("extra message %d", i+1), size)); err != nil {
				return err
			}
		} else if err := steps[i](); err != nil {
			return err
		}
		if !killAt.IsZero() && time.Now().After(killAt) && r.killed == nil && i >= len(steps)-1 {
			if err := r.killMix(ctx); err != nil {
				return err
			}
		}
		if !sleep(ctx, r.cfg.SendGap) {
			return ctx.Err()
		}
	}
	if !killAt.IsZero() && r.killed == nil {
		if !sleep(ctx, time.Until(killAt)) {
			return ctx.Err()
		}
		if err := r.killMix(ctx); err != nil {
			return err
		}
	}
	r.pr.phase("online phase sent; waiting for every message to arrive")
	r.waitDelivered(ctx)

	// Offline phase: bob hands out a fresh receiver-anonymous contact, goes
	// offline (his state saved), alice writes to both his contacts; the
	// forward message is acknowledged by bob's provider, which holds it;
	// bob comes back from his state and fetches both.
	// A client forgets its outgoing messages when it restarts (their ACKs
	// would find no one): let bob's finish first.
	r.waitAcked(ctx, 10*time.Second)
	anon, err := r.anonymousContact(ctx, b)
	if err != nil {
		return err
	}
	fwd, err := b.client().NewContact(ctx, client.ContactOptions{})
	if err != nil {
		return fmt.Errorf("demo: bob's contact: %w", err)
	}
	if err := b.stop(); err != nil {
		return err
	}
	r.pr.phase("bob went offline (state saved to %s)", filepath.Base(b.state))
	id, err := r.send(ctx, a, "bob", fwd, "offline", r.body("written while bob was offline", capacity*3/2), true)
	if err != nil {
		return err
	}
	if _, err := r.send(ctx, a, "bob", anon, "offline-anonymous", r.body("to bob's SURB mailbox while he was offline", 0), true); err != nil {
		return err
	}
	if err := r.waitFinal(ctx, id); err != nil {
		return err
	}
	if st, _ := r.tr.final(id); st == client.StateAcked {
		r.pr.phase("bob's provider acknowledged the message for offline bob: it waits in his mailbox")
	}
	if !sleep(ctx, 2*time.Second) { // the anonymous one has no ACK; let it land
		return ctx.Err()
	}
	if err := b.start(ctx); err != nil {
		return err
	}
	r.pr.phase("bob is back (identity and state reloaded); fetching his mailboxes")
	r.waitDelivered(ctx)
	r.waitAcked(ctx, 15*time.Second)
	return ctx.Err()
}

// waitDelivered waits until every message sent so far arrived, until
// every one missing failed at its sender (and a moment more), or until the
// delivery timeout.
func (r *run) waitDelivered(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.DeliveryTimeout)
	var allFailedSince time.Time
	for {
		sent, delivered, changed := r.tr.counts()
		if delivered >= sent {
			return
		}
		recs, _ := r.tr.snapshot()
		allFailed := true
		for _, rec := range recs {
			if rec.Deliveries == 0 && rec.State != client.StateFailed {
				allFailed = false
			}
		}
		switch {
		case !allFailed:
			allFailedSince = time.Time{}
		case allFailedSince.IsZero():
			allFailedSince = time.Now()
		case time.Since(allFailedSince) > 5*time.Second:
			r.pr.phase("%d messages failed at their sender", sent-delivered)
			return
		}
		if time.Now().After(deadline) {
			r.pr.phase("gave up waiting after %v: %d of %d delivered", r.cfg.DeliveryTimeout, delivered, sent)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitAcked waits up to d for every message to reach a final state at its
// sender, so that the summary shows the ACKs of the last ones.
func (r *run) waitAcked(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		recs, _ := r.tr.snapshot()
		if !slices.ContainsFunc(recs, func(rec Record) bool { return rec.State == 0 }) {
			return
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return
		}
	}
}

// waitFinal waits for a message's final state at its sender.
func (r *run) waitFinal(ctx context.Context, id client.MessageID) error {
	deadline := time.Now().Add(r.cfg.DeliveryTimeout)
	for {
		if _, ok := r.tr.final(id); ok {
			return nil
		}
		if time.Now().After(deadline) {
			r.pr.phase("no acknowledgement after %v", r.cfg.DeliveryTimeout)
			return nil
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// killMix kills the first mix of layer 1, once the messages sent so far
// arrived: the one through a SURB mailbox travels the single path its
// contact fixed, unacknowledged and never retransmitted, so a mix dying
// under it loses it for good (the receiver-anonymous mode's known
// trade-off, docs/SPEC.md "ACKs and retransmission"); what the kill shows
// is the retransmission of forward messages over other paths.
func (r *run) killMix(ctx context.Context) error {
	r.waitDelivered(ctx)
	m := r.ln.Mixes()[0]
	if err := m.Kill(); err != nil {
		return fmt.Errorf("demo: killing %s: %w", m.Name, err)
	}
	r.killed = m
	r.pr.phase("killed %s (SIGKILL): packets through it are lost until clients route around it", m.Name)
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
