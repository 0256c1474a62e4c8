// Handing incoming messages to the application, and acknowledging them at
// the provider only once nothing can lose them any more.

package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
)

// ErrClosed: Run has returned and no message is left to hand out.
var ErrClosed = errors.New("client: stopped")

// inMsg is a complete message waiting for the application.
type inMsg struct {
	Message
	handed bool // given out by Receive (or Messages) in this run
}

// entryRef names one stored entry in one of the client's mailboxes.
type entryRef struct {
	ref clientproto.MailboxRef
	id  uint64
}

// pendingAck is an entry to acknowledge once the state of generation gen
// is saved (gen 0: at once).
type pendingAck struct {
	entryRef
	gen uint64
}

// Receive returns the next incoming message, waiting for one until ctx
// ends. The message stays in the client's state, and a restarted client
// hands it out again, until the application calls Done with its ID: call
// Done once the message is handled (shown, stored), so that a crash in
// between loses nothing. After Run has returned, Receive hands out what is
// left, then returns ErrClosed.
func (c *Client) Receive(ctx context.Context) (Message, error) {
	for {
		c.mu.Lock()
		for _, m := range c.unread {
			if !m.handed {
				m.handed = true
				msg := m.Message
				c.mu.Unlock()
				return msg, nil
			}
		}
		wake := c.inboxWake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return Message{}, ctx.Err()
		case <-c.runDone:
			c.mu.Lock()
			left := slices.ContainsFunc(c.unread, func(m *inMsg) bool { return !m.handed })
			c.mu.Unlock()
			if !left {
				return Message{}, ErrClosed
			}
		}
	}
}

// Done tells the client that the application has taken message id (from
// Receive): the client forgets it, saves its state, and (without a Store)
// acknowledges its fragments at the provider, which deletes them. Done of
// a message the client does not hold is a no-op. It returns the Store's
// error, if saving failed; the message is then handed out again after a
// restart.
func (c *Client) Done(id MessageID) error {
	c.mu.Lock()
	i := slices.IndexFunc(c.unread, func(m *inMsg) bool { return m.ID == id })
	if i < 0 {
		c.mu.Unlock()
		return nil
	}
	c.unread = slices.Delete(c.unread, i, i+1)
	c.release(id)
	c.changed()
	c.mu.Unlock()
	c.wakeFetch()
	if err := c.persist(); err != nil {
		return fmt.Errorf("client: message %v taken, but the state was not saved: %w", id, err)
	}
	return nil
}

// Handle hands every incoming message to h until ctx ends or Run returns,
// calling Done for each message h returns nil for. A message h fails stays
// with the client and is handed out again after a restart; Handle returns
// h's error.
func (c *Client) Handle(ctx context.Context, h func(Message) error) error {
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := h(m); err != nil {
			return err
		}
		if err := c.Done(m.ID); err != nil {
			return err
		}
	}
}

// Messages delivers incoming messages on a channel, each once, and closes
// it when Run returns. A message received from it counts as taken (Done):
// if the program dies before handling it, it is gone. Receive and Done
// (or Handle) survive that crash; use them, not both.
func (c *Client) Messages() <-chan Message {
	c.pumpOnce.Do(func() {
		go func() {
			defer close(c.messages)
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				<-c.runDone
				cancel()
			}()
			for {
				m, err := c.Receive(ctx)
				if err != nil {
					return
				}
				select {
				case c.messages <- m:
					if err := c.Done(m.ID); err != nil {
						c.log.Warn("saving the state", "err", err)
					}
				case <-c.runDone:
					// Not taken: it stays in the state for the next run.
					c.mu.Lock()
					for _, u := range c.unread {
						if u.ID == m.ID {
							u.handed = false
						}
					}
					c.mu.Unlock()
					return
				}
			}
		}()
	})
	return c.messages
}

// Flush waits until the end-to-end acknowledgements the client owes for
// messages that came through its anonymous contacts have left (in payload
// slots, as Run sends them) and its state is saved, or until ctx ends.
// Call it before stopping a client that has just received such messages,
// so that their senders learn they arrived.
func (c *Client) Flush(ctx context.Context) error {
	for {
		if err := c.persist(); err != nil {
			return err
		}
		c.mu.Lock()
		owed := len(c.replies)
		c.mu.Unlock()
		if owed == 0 {
			return nil
		}
		select {
		case <-c.runDone:
			return fmt.Errorf("client: %d end-to-end acknowledgements not sent: %w", owed, ErrClosed)
		default:
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return fmt.Errorf("client: %d end-to-end acknowledgements not sent: %w", owed, ctx.Err())
		}
	}
}

// deliver files a complete message for the application (under c.mu).
func (c *Client) deliver(m *Message) {
	c.unread = append(c.unread, &inMsg{Message: *m})
	close(c.inboxWake)
	c.inboxWake = make(chan struct{})
}

// inboxFull reports whether the application holds as many messages as
// MessageBuffer allows (under c.mu): fetching waits meanwhile.
func (c *Client) inboxFull() bool { return len(c.unread) >= c.cfg.MessageBuffer }

// settle decides when a fetched entry may be deleted at the provider
// (under c.mu). With a Store, every entry is acknowledged once the state
// that holds what it carried is saved (the caller tags batch's acks with
// the generation); without one, an entry carrying part of a message is
// held until the application is Done with that message.
func (c *Client) settle(e entryRef, msg *MessageID, batch *[]pendingAck) {
	if msg != nil && c.store == nil {
		if _, pending := c.inbox[*msg]; pending || c.isUnread(*msg) {
			c.held[*msg] = append(c.held[*msg], e)
			return
		}
	}
	*batch = append(*batch, pendingAck{entryRef: e})
}

func (c *Client) isUnread(id MessageID) bool {
	return slices.ContainsFunc(c.unread, func(m *inMsg) bool { return m.ID == id })
}

// release frees the entries held for message id (under c.mu).
func (c *Client) release(id MessageID) {
	for _, e := range c.held[id] {
		c.acks = append(c.acks, pendingAck{entryRef: e})
	}
	delete(c.held, id)
}

func (c *Client) wakeFetch() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// sendAcks acknowledges the entries whose state is saved.
func (c *Client) sendAcks(ctx context.Context) {
	c.mu.Lock()
	var ready, later []pendingAck
	for _, a := range c.acks {
		if c.store == nil || a.gen <= c.savedGen {
			ready = append(ready, a)
		} else {
			later = append(later, a)
		}
	}
	c.acks = later
	c.mu.Unlock()
	byRef := map[clientproto.MailboxRef][]uint64{}
	var refs []clientproto.MailboxRef
	for _, a := range ready {
		if _, ok := byRef[a.ref]; !ok {
			refs = append(refs, a.ref)
		}
		byRef[a.ref] = append(byRef[a.ref], a.id)
	}
	for i, ref := range refs {
		actx, cancel := context.WithTimeout(ctx, callTimeout)
		err := c.link().Ack(actx, ref, byRef[ref])
		cancel()
		c.observe(ctx, err)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Debug("ack failed; retrying at the next fetch", "surb", ref.SURB, "err", err)
			}
			// Acks are idempotent: keep the rest for the next round.
			c.mu.Lock()
			for _, r := range refs[i:] {
				for _, id := range byRef[r] {
					c.acks = append(c.acks, pendingAck{entryRef: entryRef{r, id}})
				}
			}
			c.mu.Unlock()
			return
		}
	}
}

// changed marks a change of the state (under c.mu).
func (c *Client) changed() { c.gen++ }

// persist saves the state if it changed since the last save. Concurrent
// callers share one save: a caller returns once a state at least as new
// as the one it changed is durable.
func (c *Client) persist() error {
	if c.store == nil {
		return nil
	}
	c.mu.Lock()
	if c.kv.dirty.Swap(false) {
		c.changed()
	}
	want := c.gen
	c.mu.Unlock()
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	if c.savedGen >= want {
		c.mu.Unlock()
		return nil
	}
	if c.kv.dirty.Swap(false) {
		c.changed()
	}
	gen := c.gen
	b, err := c.encodeState()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := c.store.Save(b); err != nil {
		return err
	}
	c.mu.Lock()
	c.savedGen = max(c.savedGen, gen)
	c.mu.Unlock()
	return nil
}
