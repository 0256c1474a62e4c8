package client

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"time"

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

// slot builds and sends the packet of one send slot.
func (c *Client) slot(ctx context.Context, kind cover.Kind) {
	now := time.Now()
	c.mu.Lock()
	sp, finished, err := c.buildSlot(kind, now)
	c.mu.Unlock()
	c.report(finished)
	if err != nil {
		c.mu.Lock()
		c.stats.SkippedSlots++
		c.mu.Unlock()
		c.log.Warn("send slot skipped", "kind", kind, "err", err)
		return
	}
	err = c.cfg.Provider.Send(ctx, sp.hop, sp.pkt)
	if err != nil && ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	switch f := sp.frag; {
	case err == nil && f != nil:
		finished = c.sentFragment(f, time.Now())
	case err != nil:
		c.stats.SendErrors++
		// A fragment the provider refused (busy, or the link is down)
		// goes back to the front of the queue with its packet, to leave
		// in the next payload slot; it does not count as a try.
		if f != nil && !f.acked && !f.msg.final() {
			f.pending = &sp
			c.requeueFront(f)
		}
	}
	c.mu.Unlock()
	c.report(finished)
	if err != nil {
		c.log.Debug("provider refused a packet", "kind", kind, "err", err)
	}
}
