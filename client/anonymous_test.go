package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// A message to an anonymous contact ends Delivered only when the
// recipient's client acknowledged it end to end, and the recipient sees
// which of its contacts it came through.
func TestAnonymousMessagesAreConfirmedEndToEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		a, _ := net.newClient(t, 0, 51, nil)
		b, _ := net.newClient(t, 1, 52, nil)
		stopA, stopB := start(t, a), start(t, b)
		waitReady(t, a, b)
		ct, err := b.NewContact(t.Context(), ContactOptions{Anonymous: true, For: "alice", SURBs: 2})
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := ParseContact(ct.String())
		if err != nil || parsed.For != "alice" || len(parsed.SURBs) != 6 {
			t.Fatalf("contact: %v, for %q, %d SURBs (want 2 for each of 3 epochs)", err, parsed.For, len(parsed.SURBs))
		}
		capacity := fragCapacity(int(testParams().PayloadLen))
		id, err := a.Send(t.Context(), parsed, body(capacity+3, 4)) // two fragments
		if err != nil {
			t.Fatal(err)
		}
		m := takeAll(t, b, 1, time.Minute)[0]
		if m.ID != id || !m.ViaSURB || m.Contact != "alice" {
			t.Fatalf("got %v via SURB %v through contact %q", m.ID, m.ViaSURB, m.Contact)
		}
		if st := waitState(t, a, id, time.Minute); st.State != StateDelivered || st.FragmentsAcked != 2 {
			t.Fatalf("status %v, %d of 2 fragments acknowledged (%v)", st.State, st.FragmentsAcked, st.Err)
		}
		if s := b.Stats(); s.RepliesSent != 2 {
			t.Errorf("b sent %d end-to-end ACKs, want 2", s.RepliesSent)
		}
		stopA()
		stopB()
		net.close()
	})
}

// Two senders given one contact: either both messages arrive, or one
// sender is told its message was not delivered; never both Delivered with
// one message lost. With one SURB per epoch they must collide: the second
// packet is a replay at the first mix, no acknowledgement comes, no SURB
// is left to try again, and its sender gets ErrNotDelivered. With more
// SURBs the senders pick at random and a collision is tried again.
func TestTwoSendersOnOneContact(t *testing.T) {
	for _, surbs := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d SURBs per epoch", surbs), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				net := newSimNet(t, 2, testParams())
				s1, _ := net.newClient(t, 0, 53, nil)
				s2, _ := net.newClient(t, 0, 54, nil)
				b, _ := net.newClient(t, 1, 55, nil)
				stop1, stop2, stopB := start(t, s1), start(t, s2), start(t, b)
				waitReady(t, s1, s2, b)
				ct, err := b.NewContact(t.Context(), ContactOptions{Anonymous: true, SURBs: surbs, Epochs: 1})
				if err != nil {
					t.Fatal(err)
				}
				id1, err := s1.Send(t.Context(), ct, []byte("from the first sender"))
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Second)
				id2, err := s2.Send(t.Context(), ct, []byte("from the second sender"))
				if err != nil {
					t.Fatal(err)
				}
				st1 := waitState(t, s1, id1, 5*time.Minute)
				st2 := waitState(t, s2, id2, 5*time.Minute)
				got := map[MessageID]bool{}
				ctx, cancel := contextWithTimeout(t, time.Minute)
				defer cancel()
				for {
					m, err := b.Receive(ctx)
					if err != nil {
						break
					}
					got[m.ID] = true
					_ = b.Done(m.ID)
				}
				for _, c := range []struct {
					id MessageID
					st MessageStatus
				}{{id1, st1}, {id2, st2}} {
					switch {
					case c.st.State == StateDelivered && !got[c.id]:
						t.Errorf("message %v is Delivered but never arrived", c.id)
					case c.st.State == StateFailed && !errors.Is(c.st.Err, ErrNotDelivered):
						t.Errorf("message %v failed with %v, want ErrNotDelivered", c.id, c.st.Err)
					case c.st.State != StateDelivered && c.st.State != StateFailed:
						t.Errorf("message %v ended %v", c.id, c.st.State)
					}
				}
				if surbs == 1 && (st1.State != StateDelivered || st2.State != StateFailed || len(got) != 1) {
					t.Errorf("one SURB: first %v, second %v, %d arrived; want the second told it failed", st1.State, st2.State, len(got))
				}
				if surbs == 4 && len(got) != 2 {
					t.Errorf("four SURBs: %d of 2 arrived (first %v, second %v)", len(got), st1.State, st2.State)
				}
				t.Logf("first %v, second %v (%v); %d arrived", st1.State, st2.State, st2.Err, len(got))
				stop1()
				stop2()
				stopB()
				net.close()
			})
		})
	}
}

// A contact covers the epochs whose keys are published: used in the next
// epoch (whose document did not exist when it was made), it still
// delivers, through that epoch's SURBs. Sent right after the boundary, a
// message uses the new epoch's SURBs, which the provider accepts: the old
// epoch's would have a first hop the provider may refuse.
func TestAContactOutlivesItsEpoch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := testParams()
		p.EpochPeriod = 2 * time.Minute
		net := newSimNet(t, 2, p)
		a, _ := net.newClient(t, 0, 56, nil)
		b, _ := net.newClient(t, 1, 57, nil)
		stopA, stopB := start(t, a), start(t, b)
		waitReady(t, a, b)
		e := net.clock.Now()
		b.mu.Lock()
		_, hasNext := b.docs[e+1]
		b.mu.Unlock()
		ct, err := b.NewContact(t.Context(), ContactOptions{Anonymous: true, SURBs: 2, Epochs: 2})
		if err != nil {
			t.Fatal(err)
		}
		if hasNext {
			t.Log("b held the next epoch's document already")
		}
		var mu sync.Mutex
		var ids []MessageID
		send := func(what string) {
			id, err := a.Send(t.Context(), ct, []byte(what))
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
		}
		send("in the contact's first epoch")
		time.Sleep(net.clock.UntilNext(time.Now()) + 300*time.Millisecond)
		send("just after the boundary")
		time.Sleep(net.clock.Period() / 2)
		send("in the middle of the next epoch")
		takeAll(t, b, 3, 2*time.Minute)
		for _, id := range ids {
			if st := waitState(t, a, id, time.Minute); st.State != StateDelivered {
				t.Errorf("message %v: %v (%v)", id, st.State, st.Err)
			}
		}
		if n := net.count("invalid"); n != 0 {
			t.Errorf("%d packets refused by nodes", n)
		}
		if s := a.Stats(); s.SendErrors != 0 {
			t.Errorf("%d packets refused by the provider", s.SendErrors)
		}
		stopA()
		stopB()
		net.close()
	})
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}
