package client

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
)

// pushAll makes newClient give clients a link with the pushed downstream
// (pushingSim), so that the client tests run on it too.
var pushAll bool

// pushingSim is a simProvider that also serves the pushed downstream, as
// host/provider does: one frame of k slots every interval of the
// document, from cursors the client names, pulses applied.
type pushingSim struct {
	*simProvider
}

var _ Subscriber = (*pushingSim)(nil)

type simDownstream struct {
	p      *simProvider
	frames chan *clientproto.Push
	stop   chan struct{}
	once   sync.Once
	done   sync.WaitGroup

	mu      sync.Mutex
	cursors map[clientproto.MailboxRef]uint64
	acked   uint64
}

func (s *pushingSim) Subscribe(ctx context.Context, cursors []clientproto.Cursor) (Downstream, error) {
	if err := s.call("subscribe"); err != nil {
		return nil, err
	}
	d := &simDownstream{p: s.simProvider, frames: make(chan *clientproto.Push), stop: make(chan struct{}),
		cursors: map[clientproto.MailboxRef]uint64{}}
	for _, c := range cursors {
		d.cursors[c.Mailbox] = c.After
	}
	iv, k := s.net.params.Downstream()
	d.done.Add(1)
	go d.push(iv, k)
	return d, nil
}

func (d *simDownstream) push(iv time.Duration, k int) {
	defer d.done.Done()
	t := time.NewTicker(iv)
	defer t.Stop()
	var seq uint64
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		d.p.mu.Lock()
		down := d.p.down
		d.p.mu.Unlock()
		if down {
			continue // a provider that is down pushes nothing
		}
		seq++
		push := &clientproto.Push{Seq: seq, Slots: k, SlotLength: clientproto.SlotLength(d.p.net.g)}
		n := d.p.net
		nd := n.nodes[d.p.home]
		now := time.Now()
		d.mu.Lock()
		push.Acked = d.acked
		refs := slices.SortedFunc(func(yield func(clientproto.MailboxRef) bool) {
			for r := range d.cursors {
				if !yield(r) {
					return
				}
			}
		}, func(a, b clientproto.MailboxRef) int {
			if a.SURB != b.SURB {
				if a.SURB {
					return 1
				}
				return -1
			}
			return slices.Compare(a.Capability[:], b.Capability[:])
		})
		n.mu.Lock()
		for _, r := range refs {
			for _, e := range nd.boxes[d.p.box(r)] {
				if len(push.Messages) == k {
					break
				}
				if e.id <= d.cursors[r] || now.After(e.expires) {
					continue
				}
				d.cursors[r] = e.id
				sm, err := clientproto.ParseStored(slices.Clone(e.raw))
				if err != nil || len(e.raw) > push.SlotLength {
					d.p.net.t.Errorf("stored entry of %d bytes does not fit a slot of %d (%v)", len(e.raw), push.SlotLength, err)
					continue
				}
				push.Messages = append(push.Messages, clientproto.Pushed{Mailbox: r, Message: clientproto.Message{ID: e.id, Expires: e.expires, StoredMessage: sm}})
			}
		}
		n.mu.Unlock()
		d.mu.Unlock()
		select {
		case d.frames <- push:
		case <-d.stop:
			return
		}
	}
}

func (d *simDownstream) Next(ctx context.Context) (*clientproto.Push, error) {
	select {
	case p := <-d.frames:
		return p, nil
	case <-d.stop:
		return nil, errSimDown
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *simDownstream) Pulse(ctx context.Context, req *clientproto.Request) error {
	if err := d.p.call("pulse"); err != nil {
		return err
	}
	if len(req.Acks) > req.AckSlots || len(req.Changes) > clientproto.PulseChanges {
		d.p.net.t.Errorf("pulse of %d acks in %d slots, %d changes", len(req.Acks), req.AckSlots, len(req.Changes))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range req.Changes {
		if c.Remove {
			delete(d.cursors, c.Mailbox)
		} else if _, ok := d.cursors[c.Mailbox]; !ok {
			d.cursors[c.Mailbox] = c.After
		}
	}
	byRef := map[clientproto.MailboxRef][]uint64{}
	for _, a := range req.Acks {
		byRef[a.Mailbox] = append(byRef[a.Mailbox], a.ID)
	}
	for r, ids := range byRef {
		if err := d.p.Ack(ctx, r, ids); err != nil {
			return nil // not applied: the client sends them again
		}
	}
	d.acked = max(d.acked, req.Seq)
	return nil
}

func (d *simDownstream) Close() error {
	d.once.Do(func() { close(d.stop) })
	d.done.Wait()
	return nil
}

// The client tests that exercise receiving, run again on the pushed
// downstream: every message still arrives exactly once, across restarts,
// crashes, offline recipients, SURB mailboxes and provider outages.
func TestThePushedDownstreamPassesTheReceivingTests(t *testing.T) {
	pushAll = true
	defer func() { pushAll = false }()
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"MessagesArriveIntactAndExactlyOnceBothWays", TestMessagesArriveIntactAndExactlyOnceBothWays},
		{"OfflineRecipientFetchesLater", TestOfflineRecipientFetchesLater},
		{"SURBContactDeliversIntoASURBMailboxAndSurvivesARestart", TestSURBContactDeliversIntoASURBMailboxAndSurvivesARestart},
		{"UnreadMessagesSurviveARestart", TestUnreadMessagesSurviveARestart},
		{"MessagesCrossAnEpochBoundary", TestMessagesCrossAnEpochBoundary},
		{"FetchedUntakenMessagesSurviveACrash", TestFetchedUntakenMessagesSurviveACrash},
		{"WithoutAStoreEntriesWaitForDone", TestWithoutAStoreEntriesWaitForDone},
		{"ARecipientsProviderDownForAMinute", TestARecipientsProviderDownForAMinute},
		{"NoDuplicateDeliveryAfterRefetchesAndRetransmissions", TestNoDuplicateDeliveryAfterRefetchesAndRetransmissions},
	} {
		t.Run(tc.name, tc.f)
	}
}

// simLink is the link a client of p gets: p, or under pushAll p with the
// pushed downstream.
func simLink(p *simProvider) Provider {
	if pushAll {
		return &pushingSim{p}
	}
	return p
}
