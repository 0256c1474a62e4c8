package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/cover"
)

// sendLoop sends one packet per slot of the merged Poisson stream. Slots
// are kept on an absolute schedule, so the time building a packet takes
// does not stretch the gaps.
func (c *Client) sendLoop(ctx context.Context) {
	// The stream's gaps are on the wire for any observer to measure, and
	// the same generator draws each slot's kind (real, loop or drop): a
	// generator whose state its outputs give away (PCG) would let the
	// observer predict which slots are real. ChaCha8 does not; it is seeded
	// from the client's generator (ChaCha8 from crypto/rand unless a test
	// injects a seeded one, so tests stay reproducible).
	var seed [32]byte
	c.mu.Lock()
	for i := 0; i < len(seed); i += 8 {
		binary.LittleEndian.PutUint64(seed[i:], c.rnd.Uint64())
	}
	c.mu.Unlock()
	r := rand.New(rand.NewChaCha8(seed))
	clear(seed[:])
	var (
		stream *cover.Stream
		rates  cover.Rates
	)
	next := time.Now()
	for {
		c.mu.Lock()
		v, _, err := c.routeView(next)
		c.mu.Unlock()
		if err == nil && (stream == nil || v.rates != rates) {
			rates = v.rates
			stream, err = cover.NewStream(rates, r)
		}
		if stream == nil {
			// Without a document there is nothing to draw from; try again
			// shortly.
			if !sleep(ctx, time.Second) {
				return
			}
			next = time.Now()
			continue
		}
		gap, kind := stream.Next()
		next = next.Add(gap)
		if !sleep(ctx, time.Until(next)) {
			return
		}
		c.slot(ctx, kind)
	}
}

// slot builds and sends the packet of one send slot. While the client is
// not connected nothing is built: the slot is skipped, and what waits to
// be sent stays queued (the fetch loop probes the provider meanwhile).
func (c *Client) slot(ctx context.Context, kind cover.Kind) {
	now := time.Now()
	c.mu.Lock()
	if c.conn.State != Connected {
		c.stats.SkippedSlots++
		c.mu.Unlock()
		return
	}
	sp, finished, err := c.buildSlot(kind, now)
	c.mu.Unlock()
	c.report(finished)
	// Reported: the statuses after the send are new ones. (Reporting
	// these again was how one failure reached OnStatus twice.)
	finished = nil
	if err != nil {
		c.mu.Lock()
		c.stats.SkippedSlots++
		c.mu.Unlock()
		c.log.Warn("send slot skipped", "kind", kind, "err", err)
		return
	}
	sctx, cancel := context.WithTimeout(ctx, callTimeout)
	err = c.link().Send(sctx, sp.hop, sp.pkt)
	cancel()
	if err != nil && ctx.Err() != nil {
		c.unsent(sp)
		return
	}
	c.observe(ctx, err)
	now = time.Now()
	c.mu.Lock()
	switch {
	case err == nil:
		c.sentPaid(ctx, now)
	case errors.Is(err, clientproto.ErrPaymentRequired):
		c.refusedForPayment(ctx, now)
	}
	switch f := sp.frag; {
	case err == nil && f != nil:
		c.sentFragment(f, now)
	case err == nil && sp.reply:
		c.stats.RepliesSent++
	case err != nil:
		c.stats.SendErrors++
		if f != nil && !f.acked && !f.msg.final() {
			if errors.Is(err, clientproto.ErrBadRequest) {
				// Not a passing condition: this packet will never be
				// taken.
				finished = c.refused(f, err, now)
			} else {
				// Busy, or the link is down: the same packet goes again
				// in the next payload slot; it does not count as a try.
				f.pending = &sp
				c.requeueFront(f)
			}
		}
		if sp.reply && !errors.Is(err, clientproto.ErrBadRequest) && len(c.replies) < maxReplies {
			c.replies = append([]slotPacket{sp}, c.replies...)
		}
	}
	c.mu.Unlock()
	c.report(finished)
	c.noteRefusal(kind, err)
}

// noteRefusal logs when the provider starts refusing packets with a
// reply (busy because its storage is full, say) and when it takes them
// again; the refusals in between go to Debug, so that a long outage is
// two lines, not one per send slot.
func (c *Client) noteRefusal(kind cover.Kind, err error) {
	var reply *clientproto.Error
	reason := ""
	if errors.As(err, &reply) {
		reason = reply.Error()
	}
	c.mu.Lock()
	prev := c.refusal
	if err == nil || reason != "" {
		c.refusal = reason
	}
	c.mu.Unlock()
	switch {
	case reason != "" && reason != prev:
		c.log.Warn("provider refuses packets; they wait and go again", "err", err)
	case err == nil && prev != "":
		c.log.Info("provider takes packets again")
	case err != nil:
		c.log.Debug("provider refused a packet", "kind", kind, "err", err)
	}
}

// unsent puts back what a slot cut short by the end of Run carried.
func (c *Client) unsent(sp slotPacket) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := sp.frag; f != nil && !f.acked && !f.msg.final() {
		f.pending = &sp
		c.requeueFront(f)
	}
	if sp.reply {
		c.replies = append([]slotPacket{sp}, c.replies...)
	}
}

// refused handles a fragment whose packet the provider refused as a bad
// request (under c.mu). A SURB reply's first hop must be a layer-0 mix of
// the provider's current document: a SURB made for an epoch whose layers
// differ is refused, and another of the contact's SURBs is tried; a
// forward packet the provider refuses is a bug it reports.
func (c *Client) refused(f *outFragment, err error, now time.Time) []MessageStatus {
	m := f.msg
	if m.to.Anonymous() {
		f.tries++ // a SURB spent
		if f.tries < maxSURBTries {
			if ss, terr := c.takeSURBs(m.to, 1, now); terr == nil {
				f.surb = ss[0]
				c.requeueFront(f)
				return nil
			}
		}
		return c.fail(m, fmt.Errorf("%w: %w", ErrSURBRefused, err), now)
	}
	return c.fail(m, fmt.Errorf("client: the provider refused the packet of fragment %d: %w", f.index+1, err), now)
}
