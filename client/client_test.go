package client

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/pkidoc"
)

// receive collects n messages from c within d of virtual time.
func receive(t *testing.T, c *Client, n int, d time.Duration) []Message {
	t.Helper()
	var got []Message
	timeout := time.After(d)
	for len(got) < n {
		select {
		case m := <-c.Messages():
			got = append(got, m)
		case <-timeout:
			t.Fatalf("received %d of %d messages in %v", len(got), n, d)
		}
	}
	return got
}

// noMore fails if c delivers anything within d.
func noMore(t *testing.T, c *Client, d time.Duration) {
	t.Helper()
	select {
	case m := <-c.Messages():
		t.Fatalf("unexpected extra delivery of message %v (%d bytes)", m.ID, len(m.Body))
	case <-time.After(d):
	}
}

func waitReady(t *testing.T, cs ...*Client) {
	t.Helper()
	for _, c := range cs {
		select {
		case <-c.Ready():
		case <-time.After(time.Minute):
			t.Fatal("client never got a document")
		}
	}
}

// waitState waits until message id of c is in a final state.
func waitState(t *testing.T, c *Client, id MessageID, d time.Duration) MessageStatus {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		st, ok := c.Status(id)
		if !ok {
			t.Fatalf("message %v unknown", id)
		}
		if !st.Finished.IsZero() {
			return st
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, _ := c.Status(id)
	t.Fatalf("message %v still %v after %v", id, st.State, d)
	return st
}

func body(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func TestMessagesArriveIntactAndExactlyOnceBothWays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		a, _ := net.newClient(t, 0, 1, nil)
		b, _ := net.newClient(t, 1, 2, nil)
		stopA, stopB := start(t, a), start(t, b)
		waitReady(t, a, b)
		ctx := t.Context()
		toA, err := a.NewContact(ctx, ContactOptions{})
		if err != nil {
			t.Fatal(err)
		}
		toB, err := b.NewContact(ctx, ContactOptions{})
		if err != nil {
			t.Fatal(err)
		}
		capacity := fragCapacity(int(testParams().PayloadLen))
		sizes := []int{0, 1, capacity, capacity + 1, 5*capacity + 7}
		want := map[MessageID][]byte{}
		var ids []MessageID
		for i, n := range sizes {
			msg := body(n, byte(i))
			id, err := a.Send(ctx, toB, msg)
			if err != nil {
				t.Fatal(err)
			}
			want[id] = msg
			ids = append(ids, id)
		}
		back := []byte("and back to A")
		backID, err := b.Send(ctx, toA, back)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range receive(t, b, len(sizes), 2*time.Minute) {
			w, ok := want[m.ID]
			if !ok {
				t.Fatalf("B got unknown or repeated message %v", m.ID)
			}
			if !bytes.Equal(m.Body, w) {
				t.Errorf("message %v: got %d bytes, want %d, content differs", m.ID, len(m.Body), len(w))
			}
			delete(want, m.ID)
		}
		if m := receive(t, a, 1, time.Minute)[0]; m.ID != backID || !bytes.Equal(m.Body, back) || m.ViaSURB {
			t.Errorf("A got %v %q (via SURB %v), want %v %q", m.ID, m.Body, m.ViaSURB, backID, back)
		}
		for _, id := range ids {
			if st := waitState(t, a, id, time.Minute); st.State != StateAcked {
				t.Errorf("message %v: %v (%v)", id, st.State, st.Err)
			}
		}
		noMore(t, a, 30*time.Second)
		noMore(t, b, 30*time.Second)
		stopA()
		stopB()
		net.close()

		sa := a.Stats()
		if sa.MessagesAcked != uint64(len(sizes)) || sa.MessagesFailed != 0 || len(sa.ACKLatencies) != len(sizes) {
			t.Errorf("A's stats: acked %d failed %d latencies %d", sa.MessagesAcked, sa.MessagesFailed, len(sa.ACKLatencies))
		}
		if sa.LoopsReturned == 0 || sa.LoopsLost != 0 || sa.Malformed != 0 {
			t.Errorf("A's loops: %+v", sa)
		}
		if n := net.count("invalid") + net.count("replay") + net.count("bad forward payload"); n != 0 {
			t.Errorf("network refused %d packets: %v", n, net.counts)
		}
		t.Logf("A: %d payload, %d loop, %d drop packets; loops %d/%d back; ACK latencies %v",
			sa.PacketsPayload, sa.PacketsLoop, sa.PacketsDrop, sa.LoopsReturned, sa.LoopsSent, sa.ACKLatencies)
	})
}

func TestOfflineRecipientFetchesLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		a, _ := net.newClient(t, 0, 3, nil)
		b, pb := net.newClient(t, 1, 4, nil)
		stopA := start(t, a)
		waitReady(t, a)
		toB, err := b.NewContact(t.Context(), ContactOptions{}) // B is not running
		if err != nil {
			t.Fatal(err)
		}
		msg := body(1200, 9)
		id, err := a.Send(t.Context(), toB, msg)
		if err != nil {
			t.Fatal(err)
		}
		// The provider acknowledges when it stores, so A is done while B
		// is offline.
		if st := waitState(t, a, id, time.Minute); st.State != StateAcked {
			t.Fatalf("while B is offline: %v (%v)", st.State, st.Err)
		}
		if pb.pending() != 3 {
			t.Fatalf("B's mailbox holds %d entries, want 3 fragments", pb.pending())
		}
		stopA()
		time.Sleep(10 * time.Minute)
		stopB := start(t, b)
		m := receive(t, b, 1, time.Minute)[0]
		if m.ID != id || !bytes.Equal(m.Body, msg) {
			t.Fatalf("B got %v (%d bytes), want %v", m.ID, len(m.Body), id)
		}
		noMore(t, b, 10*time.Second)
		stopB()
		net.close()
	})
}

func TestSURBContactDeliversIntoASURBMailboxAndSurvivesARestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		a, _ := net.newClient(t, 0, 5, nil)
		b, pb := net.newClient(t, 1, 6, nil)
		stopA, stopB := start(t, a), start(t, b)
		waitReady(t, a, b)
		ctx := t.Context()
		contact, err := b.NewContact(ctx, ContactOptions{Anonymous: true, SURBs: 4})
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := ParseContact(contact.String())
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(parsed.Key, b.MessageKey()) {
			t.Error("anonymous contact carries the client's forward key: contacts are linkable")
		}
		capacity := fragCapacity(int(testParams().PayloadLen))
		first := body(capacity+10, 1) // two fragments, two SURBs
		id1, err := a.Send(ctx, parsed, first)
		if err != nil {
			t.Fatal(err)
		}
		m := receive(t, b, 1, time.Minute)[0]
		if m.ID != id1 || !bytes.Equal(m.Body, first) || !m.ViaSURB {
			t.Fatalf("got %v via SURB %v, want %v", m.ID, m.ViaSURB, id1)
		}
		if st, _ := a.Status(id1); st.State != StateSent {
			t.Errorf("SURB message state %v, want sent", st.State)
		}
		// Three SURBs were needed for a three-fragment message; two are left.
		if _, err := a.Send(ctx, parsed, body(2*capacity+1, 2)); !errors.Is(err, ErrNoSURBs) {
			t.Errorf("sending beyond the contact's SURBs: err = %v, want ErrNoSURBs", err)
		}

		// B restarts: a new Client with the same identity and exported state.
		state, err := b.MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		stopB()
		second := []byte("after the restart")
		id2, err := a.Send(ctx, parsed, second)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Second)
		b2 := restarted(t, net, b, pb, state)
		stopB2 := start(t, b2)
		m = receive(t, b2, 1, time.Minute)[0]
		if m.ID != id2 || !bytes.Equal(m.Body, second) {
			t.Fatalf("after restart got %v %q, want %v", m.ID, m.Body, id2)
		}
		noMore(t, b2, 10*time.Second)
		stopA()
		stopB2()
		net.close()
	})
}

func TestRetransmissionRoutesAroundADroppingMix(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		bad := net.layers[1][0]
		net.dropAll(bad)
		a, _ := net.newClient(t, 0, 7, nil)
		b, _ := net.newClient(t, 1, 8, nil)
		stopA, stopB := start(t, a), start(t, b)
		waitReady(t, a, b)
		toB, err := b.NewContact(t.Context(), ContactOptions{})
		if err != nil {
			t.Fatal(err)
		}
		const n = 6
		want := map[MessageID][]byte{}
		for i := range n {
			msg := []byte(fmt.Sprintf("message %d", i))
			id, err := a.Send(t.Context(), toB, msg)
			if err != nil {
				t.Fatal(err)
			}
			want[id] = msg
		}
		for _, m := range receive(t, b, n, 3*time.Minute) {
			if w, ok := want[m.ID]; !ok || !bytes.Equal(w, m.Body) {
				t.Fatalf("unexpected or repeated message %v %q", m.ID, m.Body)
			}
			delete(want, m.ID)
		}
		time.Sleep(time.Minute)
		noMore(t, b, time.Second)
		stopA()
		stopB()
		net.close()

		s := a.Stats()
		if s.MessagesAcked != n {
			t.Errorf("acked %d of %d", s.MessagesAcked, n)
		}
		if s.Retransmissions == 0 {
			t.Error("no retransmission although a mix drops everything")
		}
		if s.LoopsLost == 0 {
			t.Error("no loop lost through the dropping mix")
		}
		worst, most := [32]byte{}, 0
		for id, c := range s.LostLoopMixes {
			if c > most {
				worst, most = id, c
			}
		}
		if worst != bad {
			t.Errorf("mix with the most lost loops is %x (%d), want the dropping %x (%d)", worst[:4], most, bad[:4], s.LostLoopMixes[bad])
		}
		if !slices.Contains(s.Suspects, bad) {
			t.Errorf("dropping mix is not a suspect: %x", s.Suspects)
		}
		t.Logf("A: %d fragments sent, %d retransmissions; loops sent %d, back %d, lost %d; lost legs through the bad mix %d, B's duplicates %d",
			s.FragmentsSent, s.Retransmissions, s.LoopsSent, s.LoopsReturned, s.LoopsLost, most, b.Stats().Duplicates)
	})
}

func TestMessageFailsAfterMaxTries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 1, testParams()) // one mix per layer: no way around
		net.dropAll(net.layers[0][0])
		var reported []MessageStatus
		a, _ := net.newClient(t, 0, 9, func(c *Config) {
			c.MaxTries = 2
			c.OnStatus = func(s MessageStatus) { reported = append(reported, s) }
		})
		stop := start(t, a)
		waitReady(t, a)
		to := &Contact{Network: net.network, Key: a.MessageKey(), Provider: net.provs[1], Mailbox: [32]byte{1}}
		id, err := a.Send(t.Context(), to, []byte("lost"))
		if err != nil {
			t.Fatal(err)
		}
		st := waitState(t, a, id, 2*time.Minute)
		stop()
		net.close()
		if st.State != StateFailed || !errors.Is(st.Err, ErrUnacknowledged) || st.Packets != 2 {
			t.Fatalf("status %+v, want failed after 2 packets with ErrUnacknowledged", st)
		}
		if len(reported) != 1 || reported[0].ID != id || reported[0].State != StateFailed {
			t.Fatalf("OnStatus got %+v", reported)
		}
	})
}

func TestSendRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 1, testParams())
		a, _ := net.newClient(t, 0, 10, func(c *Config) { c.MaxQueued = 3 })
		stop := start(t, a)
		waitReady(t, a)
		defer func() { stop(); net.close() }()
		good, _ := a.NewContact(t.Context(), ContactOptions{})
		capacity := fragCapacity(int(testParams().PayloadLen))
		other := *good
		other.Network = "elsewhere"
		unknown := *good
		unknown.Provider = [32]byte{9}
		for _, tt := range []struct {
			name string
			to   *Contact
			size int
			want error
		}{
			{"a message over MaxFragments is too long", good, MaxFragments*capacity + 1, ErrMessageTooLong},
			{"more fragments than the queue holds", good, 3*capacity + 1, ErrQueueFull},
			{"a contact on another network", &other, 1, ErrContact},
			{"a provider not in the document", &unknown, 1, ErrUnknownProvider},
			{"a nil contact", nil, 1, ErrContact},
		} {
			// t.Run is not allowed inside a synctest bubble.
			if _, err := a.Send(t.Context(), tt.to, make([]byte, tt.size)); !errors.Is(err, tt.want) {
				t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
			}
		}
	})
}

func TestNewRefusesBadConfig(t *testing.T) {
	net := newSimNet(t, 1, testParams())
	_, p := net.newClient(t, 0, 1, nil)
	ok := Config{Identity: make([]byte, 64), Provider: p, ProviderID: net.provs[0], Clock: net.clock}
	for _, tt := range []struct {
		name string
		mod  func(*Config)
	}{
		{"a short identity", func(c *Config) { c.Identity = c.Identity[:10] }},
		{"no provider", func(c *Config) { c.Provider = nil }},
		{"no provider ID", func(c *Config) { c.ProviderID = [32]byte{} }},
		{"an identity that is no key", func(c *Config) { c.Identity = make([]byte, 32) }},
		{"a negative fetch interval", func(c *Config) { c.FetchInterval = -1 }},
		{"a message key of the wrong size", func(c *Config) { c.MessageKey = []byte{1} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			if _, err := New(cfg); !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
	if _, err := New(ok); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	// Without a clock the client learns it from the network; without an
	// identity it makes one.
	bare := ok
	bare.Clock, bare.Identity = epoch.Clock{}, nil
	if _, err := New(bare); err != nil {
		t.Fatalf("config without clock and identity refused: %v", err)
	}
}

func TestRefusedPacketsAreSentAgainWithoutCountingAsTries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		a, pa := net.newClient(t, 0, 11, func(c *Config) { c.MaxTries = 1 })
		b, _ := net.newClient(t, 1, 12, nil)
		stopA, stopB := start(t, a), start(t, b)
		waitReady(t, a, b)
		toB, _ := b.NewContact(t.Context(), ContactOptions{})
		anon, err := b.NewContact(t.Context(), ContactOptions{Anonymous: true, SURBs: 1})
		if err != nil {
			t.Fatal(err)
		}
		pa.mu.Lock()
		pa.refuseNext = 40 // several seconds of slots
		pa.mu.Unlock()
		id1, err := a.Send(t.Context(), toB, []byte("forward"))
		if err != nil {
			t.Fatal(err)
		}
		id2, err := a.Send(t.Context(), anon, []byte("through a SURB"))
		if err != nil {
			t.Fatal(err)
		}
		got := map[MessageID]bool{}
		for _, m := range receive(t, b, 2, 2*time.Minute) {
			got[m.ID] = true
		}
		if !got[id1] || !got[id2] {
			t.Fatalf("received %v, want %v and %v", got, id1, id2)
		}
		st := waitState(t, a, id1, time.Minute)
		stopA()
		stopB()
		net.close()
		if st.State != StateAcked || st.Packets != 1 {
			t.Errorf("forward message: %v after %d packets, want acked after 1", st.State, st.Packets)
		}
		if s := a.Stats(); s.SendErrors != 40 {
			t.Errorf("%d send errors, want 40", s.SendErrors)
		}
	})
}

func TestMessagesCrossAnEpochBoundary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := testParams()
		p.EpochPeriod = 20 * time.Second
		net := newSimNet(t, 2, p)
		a, _ := net.newClient(t, 0, 13, nil)
		b, _ := net.newClient(t, 1, 14, nil)
		stopA, stopB := start(t, a), start(t, b)
		waitReady(t, a, b)
		toB, _ := b.NewContact(t.Context(), ContactOptions{})
		first := net.clock.Now()
		// One message just before the boundary, one after it.
		time.Sleep(net.clock.UntilNext(time.Now()) - 300*time.Millisecond)
		var ids []MessageID
		for i := range 2 {
			id, err := a.Send(t.Context(), toB, []byte{byte(i)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
			time.Sleep(5 * time.Second)
		}
		if net.clock.Now() != first+1 {
			t.Fatalf("epoch %d, want %d", net.clock.Now(), first+1)
		}
		receive(t, b, 2, time.Minute)
		for _, id := range ids {
			if st := waitState(t, a, id, time.Minute); st.State != StateAcked {
				t.Errorf("message %v: %v", id, st.State)
			}
		}
		stopA()
		stopB()
		net.close()
		if n := net.count("invalid"); n != 0 {
			t.Errorf("%d packets refused across the boundary", n)
		}
		if s := a.Stats(); s.SkippedSlots != 0 || s.LoopsLost != 0 {
			t.Errorf("skipped %d slots, lost %d loops", s.SkippedSlots, s.LoopsLost)
		}
	})
}

// Messages a client completed but nobody took before it stopped are saved
// by MarshalState and handed over by the next run (and, without a Store,
// were never acknowledged at the provider either): a stop never loses a
// delivered message, nor hands it out twice.
func TestUnreadMessagesSurviveARestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		a, _ := net.newClient(t, 0, 21, nil)
		b, pb := net.newClient(t, 1, 22, func(c *Config) { c.MessageBuffer = 1 })
		stopA, stopB := start(t, a), start(t, b)
		waitReady(t, a, b)
		toB, err := b.NewContact(t.Context(), ContactOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := map[MessageID]string{}
		for i := range 3 {
			msg := fmt.Sprintf("unread %d", i)
			id, err := a.Send(t.Context(), toB, []byte(msg))
			if err != nil {
				t.Fatal(err)
			}
			want[id] = msg
		}
		// Nobody reads b's messages while they arrive.
		deadline := time.Now().Add(2 * time.Minute)
		for b.Stats().MessagesDelivered < 3 && time.Now().Before(deadline) {
			time.Sleep(time.Second)
		}
		stopB()
		state, err := b.MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		b2 := restarted(t, net, b, pb, state)
		stopB2 := start(t, b2)
		for _, m := range receive(t, b2, 3, time.Minute) {
			if want[m.ID] != string(m.Body) {
				t.Fatalf("after restart got %v %q", m.ID, m.Body)
			}
			delete(want, m.ID)
		}
		if len(want) != 0 {
			t.Fatalf("%d messages lost across the restart", len(want))
		}
		noMore(t, b2, 10*time.Second)
		stopA()
		stopB2()
		net.close()
	})
}

// A client that got its first document before the recipient's provider was
// in it still sends to that provider once the document has it: Send fetches
// the document again, and so does the client every docRefresh.
func TestALateProviderIsFoundInAFreshDocument(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		e := net.clock.At(time.Now())
		b, _ := net.newClient(t, 1, 2, nil)
		stopB := start(t, b)
		waitReady(t, b)
		toB, err := b.NewContact(t.Context(), ContactOptions{})
		if err != nil {
			t.Fatal(err)
		}
		restore := net.withhold(e, net.provs[1])
		a, _ := net.newClient(t, 0, 1, nil)
		stopA := start(t, a)
		waitReady(t, a)
		has := func() bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			_, ok := a.docs[e].topo.Node(net.provs[1])
			return ok
		}
		if has() {
			t.Fatal("the withheld provider is in the client's first document")
		}
		if _, err := a.send(toB, []byte("too early"), false); !errors.Is(err, ErrUnknownProvider) {
			t.Fatalf("send without refetching: err = %v, want ErrUnknownProvider", err)
		}
		if _, err := a.Send(t.Context(), toB, []byte("too early")); !errors.Is(err, ErrUnknownProvider) {
			t.Fatalf("Send while the provider is still missing: err = %v, want ErrUnknownProvider", err)
		} else if want := fmt.Sprintf("document of epoch %d", e); !strings.Contains(err.Error(), want) {
			t.Fatalf("Send while the provider is still missing: %q does not name the %s", err, want)
		}
		restore()
		id, err := a.Send(t.Context(), toB, []byte("found"))
		if err != nil {
			t.Fatalf("Send once the document has the provider: %v", err)
		}
		if got := receive(t, b, 1, time.Minute); string(got[0].Body) != "found" || got[0].ID != id {
			t.Fatalf("b got %q", got[0].Body)
		}

		// Without a Send, the refresh alone picks up a change.
		restore = net.withhold(e, net.layers[0][0])
		a.mu.Lock()
		delete(a.docs, e)
		a.mu.Unlock()
		if _, err := a.fetchDocument(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		restore()
		inView := func() bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			_, ok := a.docs[e].topo.Node(net.layers[0][0])
			return ok
		}
		if inView() {
			t.Fatal("the withheld mix is in the client's document")
		}
		time.Sleep(docRefresh(net.clock.Period()) + time.Second)
		if !inView() {
			t.Errorf("the mix is not in the client's document %v after it was published", docRefresh(net.clock.Period()))
		}
		stopA()
		stopB()
	})
}

// A document in which the client's provider is not a provider (a provider
// that signs itself in as a mix) is refused, not used to build paths.
func TestOwnProviderMustBeAProvider(t *testing.T) {
	net := newSimNet(t, 2, testParams())
	defer net.close()
	if _, err := newView(net.doc, net.network, net.layers[0][0]); !errors.Is(err, ErrUnknownProvider) {
		t.Fatalf("a mix as the own provider: err = %v, want ErrUnknownProvider", err)
	}
	if _, err := newView(net.doc, net.network, net.provs[0]); err != nil {
		t.Fatalf("the real provider: %v", err)
	}
}

// restarted is a new Client with b's identity and provider, loaded with
// state, as a CLI client restarting from its state file.
func restarted(t *testing.T, net *simNet, b *Client, pb *simProvider, state []byte) *Client {
	t.Helper()
	b2, err := New(Config{Identity: b.cfg.Identity, Provider: simLink(pb), ProviderID: b.cfg.ProviderID,
		Network: net.network, Clock: net.clock, Rand: b.cfg.Rand, Logger: b.cfg.Logger, FetchInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.LoadState(state); err != nil {
		t.Fatal(err)
	}
	return b2
}

// An operator's client named epoch N−1 in an error while the provider
// held N: the client was routing on the previous epoch's document. The
// error now names the document's epoch and, when it is not the current
// one, the current epoch and that its document is not fetched yet.
func TestNotInDocumentNamesBothEpochs(t *testing.T) {
	for _, tc := range []struct {
		doc, cur uint64
		want     []string
	}{
		{7, 7, []string{"document of epoch 7"}},
		{6, 7, []string{"document of epoch 6, the newest this client holds", "network is in epoch 7", "not fetched yet"}},
		{8, 7, []string{"next epoch 8", "network is in epoch 7"}},
	} {
		v := &view{doc: &pkidoc.Document{Epoch: tc.doc}}
		err := notInDocument(v, tc.cur, "the contact's provider 0102")
		if !errors.Is(err, ErrUnknownProvider) {
			t.Fatalf("doc %d, now %d: %v does not wrap ErrUnknownProvider", tc.doc, tc.cur, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("doc %d, now %d: %q lacks %q", tc.doc, tc.cur, err, w)
			}
		}
	}
}
