package demo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/core/topology"
)

// fragmentOverhead is what HPKE (48 bytes) and the client's fragment
// header (23 bytes) take from a packet's user payload (see package client).
const fragmentOverhead = 48 + 23

// capacity is how many message bytes one packet carries on this network.
func (r *run) capacity() (int, error) {
	p := r.ln.Spec.Params
	g, err := topology.Geometry(&p)
	if err != nil {
		return 0, fmt.Errorf("demo: %w", err)
	}
	return g.UserForwardPayloadLength - fragmentOverhead, nil
}

// body makes a message: a readable line, then random bytes up to size.
func (r *run) body(text string, size int) []byte {
	b := []byte(text)
	if size > len(b) {
		pad := make([]byte, size-len(b))
		_, _ = rand.Read(pad)
		b = append(b, pad...)
	}
	return b
}

func (r *run) sendForward(ctx context.Context, from, to *peer, kind string, body []byte) error {
	c := to.client()
	if c == nil {
		return fmt.Errorf("demo: %s is offline", to.name)
	}
	ct, err := c.NewContact(ctx, client.ContactOptions{})
	if err != nil {
		return fmt.Errorf("demo: %s's contact: %w", to.name, err)
	}
	_, err = r.send(ctx, from, to.name, ct, kind, body, false)
	return err
}

func (r *run) sendAnonymous(ctx context.Context, from, to *peer, kind string, body []byte) error {
	ct, err := r.anonymousContact(ctx, to)
	if err != nil {
		return err
	}
	_, err = r.send(ctx, from, to.name, ct, kind, body, false)
	return err
}

// anonymousContact makes a receiver-anonymous contact of p that stays
// usable for a while: near the end of an epoch it waits for the next one,
// since a contact's SURBs expire with their epoch's keys.
func (r *run) anonymousContact(ctx context.Context, p *peer) (*client.Contact, error) {
	clk := r.ln.Clock
	// The contact must outlive its use: a few seconds to send and deliver,
	// longer for the offline phase (bob stops first).
	margin := min(6*time.Second, r.cfg.Epoch/3)
	if left := clk.UntilNext(time.Now()); left < margin {
		r.pr.phase("epoch %d ends in %v: waiting for the next one before making a contact whose SURBs must outlive the send",
			clk.Now(), left.Round(100*time.Millisecond))
		if !sleep(ctx, left+500*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	var lastErr error
	for range 20 {
		ct, err := p.client().NewContact(ctx, client.ContactOptions{Anonymous: true, SURBs: 4})
		if err == nil {
			return ct, nil
		}
		lastErr = err
		if !errors.Is(err, client.ErrNotReady) || !sleep(ctx, 500*time.Millisecond) { // the new epoch's document
			break
		}
	}
	return nil, fmt.Errorf("demo: %s's anonymous contact: %w", p.name, lastErr)
}

func (r *run) send(ctx context.Context, from *peer, to string, ct *client.Contact, kind string, body []byte, offline bool) (client.MessageID, error) {
	c := from.client()
	if c == nil {
		return client.MessageID{}, fmt.Errorf("demo: %s is offline", from.name)
	}
	id, err := c.Send(ctx, ct, body)
	if err != nil {
		return id, fmt.Errorf("demo: %s → %s (%s): %w", from.name, to, kind, err)
	}
	frags := 1
	if st, ok := c.Status(id); ok {
		frags = st.Fragments
	}
	rec := &Record{From: from.name, To: to, Kind: kind, Size: len(body), Fragments: frags, ID: id, Sent: time.Now(), Offline: offline}
	r.tr.sent(rec, body)
	r.log.Info("message sent", "n", rec.N, "from", from.name, "to", to, "kind", kind, "bytes", len(body), "fragments", frags)
	return id, nil
}
