package client

import (
	"context"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
)

// maxFetchRounds bounds the fetches of one mailbox per tick.
const maxFetchRounds = 64

// fetchLoop polls every mailbox each FetchInterval, then checks timeouts
// and saves what changed. While the provider does not answer it backs off
// (doubling, with jitter, up to fetchBackoffMax); it is the loop that
// notices the provider is back.
func (c *Client) fetchLoop(ctx context.Context) {
	bo := backoff{min: c.cfg.FetchInterval, max: max(c.cfg.FetchInterval, fetchBackoffMax)}
	for {
		var err error
		if !c.pushing.Load() {
			// Polling shows an observer of the link when and how much
			// arrives: only for a provider without the pushed downstream.
			if err = c.fetchAll(ctx); err == nil {
				c.sendAcks(ctx)
			}
		}
		now := time.Now()
		c.mu.Lock()
		finished := c.maintain(now)
		dirty := c.gen > c.savedGen
		c.mu.Unlock()
		c.report(finished)
		if dirty {
			if err := c.persist(); err != nil {
				c.log.Warn("saving the state", "err", err)
			}
		}
		wait := c.cfg.FetchInterval
		switch {
		case err != nil && ctx.Err() == nil && isLinkError(err):
			wait = bo.next()
			c.log.Debug("fetch failed; backing off", "retry_in", wait.Round(time.Millisecond), "err", err)
		case err != nil && ctx.Err() == nil:
			bo.reset()
			c.log.Debug("fetch failed", "err", err)
		default:
			bo.reset()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-c.kick:
			t.Stop()
		}
	}
}

func (c *Client) fetchAll(ctx context.Context) error {
	now := time.Now()
	refs := []clientproto.MailboxRef{{}}
	c.mu.Lock()
	for cp, mb := range c.surbMailboxes {
		if now.Before(mb.expires) {
			refs = append(refs, clientproto.MailboxRef{SURB: true, Capability: cp})
		}
	}
	c.mu.Unlock()
	for _, ref := range refs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := c.fetchMailbox(ctx, ref); err != nil {
			return err
		}
	}
	return nil
}

// fetchMailbox fetches what is new in one mailbox and files it. Nothing is
// acknowledged here: the entries go to c.acks, tagged with the state
// generation that holds what they carried (sendAcks).
func (c *Client) fetchMailbox(ctx context.Context, ref clientproto.MailboxRef) error {
	for range maxFetchRounds {
		c.mu.Lock()
		full := c.inboxFull()
		after := c.after[ref]
		c.mu.Unlock()
		if full {
			return nil
		}
		fctx, cancel := context.WithTimeout(ctx, callTimeout)
		msgs, err := c.link().Fetch(fctx, ref, after, 0)
		cancel()
		c.observe(ctx, err)
		if err != nil {
			return err // fetchLoop logs it
		}
		if len(msgs) == 0 {
			return nil
		}
		now := time.Now()
		var (
			finished []MessageStatus
			batch    []pendingAck
			kept     bool
		)
		c.mu.Lock()
		for _, m := range msgs {
			after = max(after, m.ID)
			r := c.consume(m.StoredMessage, now)
			finished = append(finished, r.finished...)
			c.settle(entryRef{ref, m.ID}, r.msg, &batch)
			kept = kept || r.kept
		}
		c.after[ref] = after
		if kept {
			// What these entries carried is now in the state: they may go
			// once it is saved.
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
				c.log.Warn("saving the state; fetched messages stay at the provider", "err", err)
				return err
			}
		}
	}
	return nil
}
