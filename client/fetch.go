package client

import (
	"context"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
)

// maxFetchRounds bounds the fetches of one mailbox per tick.
const maxFetchRounds = 64

// fetchLoop polls every mailbox each FetchInterval, then checks timeouts.
func (c *Client) fetchLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.FetchInterval)
	defer t.Stop()
	for {
		c.fetchAll(ctx)
		c.mu.Lock()
		finished := c.maintain(time.Now())
		c.mu.Unlock()
		c.report(finished)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Client) fetchAll(ctx context.Context) {
	now := time.Now()
	refs := []clientproto.MailboxRef{{}}
	c.mu.Lock()
	for cp, exp := range c.surbMailboxes {
		if now.Before(exp) {
			refs = append(refs, clientproto.MailboxRef{SURB: true, Capability: cp})
		}
	}
	c.mu.Unlock()
	for _, ref := range refs {
		if ctx.Err() != nil {
			return
		}
		c.fetchMailbox(ctx, ref)
	}
}

func (c *Client) fetchMailbox(ctx context.Context, ref clientproto.MailboxRef) {
	for range maxFetchRounds {
		c.mu.Lock()
		after := c.after[ref]
		c.mu.Unlock()
		msgs, err := c.cfg.Provider.Fetch(ctx, ref, after, 0)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Debug("fetch failed", "surb", ref.SURB, "err", err)
			}
			return
		}
		if len(msgs) == 0 {
			return
		}
		now := time.Now()
		ids := make([]uint64, 0, len(msgs))
		var complete []Message
		c.mu.Lock()
		var finished []MessageStatus
		for _, m := range msgs {
			ids = append(ids, m.ID)
			after = max(after, m.ID)
			got, fin := c.consume(m.StoredMessage, now)
			if got != nil {
				complete = append(complete, *got)
			}
			finished = append(finished, fin...)
		}
		c.mu.Unlock()
		c.report(finished)
		for i, m := range complete {
			select {
			case c.messages <- m:
			case <-ctx.Done():
				// Already marked delivered: keep the rest for the next
				// Run (MarshalState saves them), never drop them.
				c.mu.Lock()
				c.unread = append(c.unread, complete[i:]...)
				c.mu.Unlock()
				return
			}
		}
		if err := c.cfg.Provider.Ack(ctx, ref, ids); err != nil && ctx.Err() == nil {
			c.log.Debug("ack failed", "surb", ref.SURB, "err", err)
		}
		c.mu.Lock()
		c.after[ref] = after
		c.mu.Unlock()
	}
}
