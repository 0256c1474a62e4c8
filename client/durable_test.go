package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sottonet/sotto/core/cover"
	"github.com/sottonet/sotto/core/epoch"
)

// crashStore is a Store whose process can "die": after crash, every Save
// fails, so the client it serves can make nothing durable any more (and,
// since it acknowledges only what is saved, can delete nothing at the
// provider), while what it saved before stays for the next client.
type crashStore struct {
	MemoryStore
	crashed atomic.Bool
}

func (s *crashStore) Save(b []byte) error {
	if s.crashed.Load() {
		return errors.New("crashed")
	}
	return s.MemoryStore.Save(b)
}

// restartFrom is a new client on the same provider, from what st holds:
// identity, clock and state all come from the Store.
func restartFrom(t *testing.T, old *Client, st Store, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{Store: st, Provider: old.cfg.Provider, ProviderID: old.cfg.ProviderID,
		Rand: old.cfg.Rand, Logger: old.cfg.Logger, FetchInterval: old.cfg.FetchInterval}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Identity().Equal(old.Identity()) {
		t.Fatal("the restarted client has another identity than its Store's")
	}
	return c
}

// takeAll receives n messages through Receive, each followed by Done.
func takeAll(t *testing.T, c *Client, n int, d time.Duration) []Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var got []Message
	for len(got) < n {
		m, err := c.Receive(ctx)
		if err != nil {
			t.Fatalf("received %d of %d messages: %v", len(got), n, err)
		}
		if err := c.Done(m.ID); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	return got
}

func noneWithin(t *testing.T, c *Client, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	if m, err := c.Receive(ctx); err == nil {
		t.Fatalf("unexpected extra delivery of message %v %q", m.ID, m.Body)
	}
}

// A receiver that fetched messages the application had not taken yet dies
// (its Store stops taking writes at that instant); a client restarted
// from the Store hands every one of them out, once. The provider deleted
// them only after the Store held them.
func TestFetchedUntakenMessagesSurviveACrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		a, _ := net.newClient(t, 0, 31, nil)
		st := &crashStore{}
		b, pb := net.newClient(t, 1, 32, func(c *Config) { c.Store = st })
		stopA, stopB := start(t, a), start(t, b)
		waitReady(t, a, b)
		toB, _ := b.NewContact(t.Context(), ContactOptions{})
		capacity := fragCapacity(int(testParams().PayloadLen))
		want := map[MessageID][]byte{}
		for i := range 3 {
			msg := body(1+i*capacity, byte(i)) // 1, 2 and 3 fragments
			id, err := a.Send(t.Context(), toB, msg)
			if err != nil {
				t.Fatal(err)
			}
			want[id] = msg
		}
		for deadline := time.Now().Add(2 * time.Minute); b.Stats().MessagesDelivered < 3; time.Sleep(time.Second) {
			if time.Now().After(deadline) {
				t.Fatalf("b completed %d of 3 messages", b.Stats().MessagesDelivered)
			}
		}
		seen := pb.entryIDs()
		time.Sleep(5 * time.Second) // the acknowledgements go out
		for _, id := range pb.entryIDs() {
			if len(seen) > 0 && id <= seen[len(seen)-1] {
				t.Errorf("b's provider still holds entry %d, fetched and saved 5 s ago", id)
			}
		}
		st.crashed.Store(true)
		stopB()
		st.crashed.Store(false) // the dead process writes no more

		b2 := restartFrom(t, b, st, nil)
		stopB2 := start(t, b2)
		for _, m := range takeAll(t, b2, 3, time.Minute) {
			if w, ok := want[m.ID]; !ok || !bytes.Equal(w, m.Body) {
				t.Fatalf("after the crash got %v (%d bytes), unknown or repeated", m.ID, len(m.Body))
			}
			delete(want, m.ID)
		}
		noneWithin(t, b2, 30*time.Second)
		stopA()
		stopB2()
		net.close()
	})
}

// Without a Store, the provider keeps every entry of a message until the
// application is Done with it: a client that dies (its memory gone) before
// that loses nothing either.
func TestWithoutAStoreEntriesWaitForDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		a, _ := net.newClient(t, 0, 33, nil)
		b, pb := net.newClient(t, 1, 34, nil)
		stopA, stopB := start(t, a), start(t, b)
		waitReady(t, a, b)
		toB, _ := b.NewContact(t.Context(), ContactOptions{})
		capacity := fragCapacity(int(testParams().PayloadLen))
		msg := body(capacity+5, 7) // two fragments
		id, err := a.Send(t.Context(), toB, msg)
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(2 * time.Minute); b.Stats().MessagesDelivered < 1; time.Sleep(time.Second) {
			if time.Now().After(deadline) {
				t.Fatal("b never completed the message")
			}
		}
		time.Sleep(5 * time.Second)
		held := pb.entryIDs()
		if len(held) < 2 {
			t.Fatalf("b's provider holds %d entries before the application took the message", len(held))
		}
		stopB() // dies: nothing of it survives

		b2, err := New(Config{Identity: b.cfg.Identity, Provider: simLink(pb), ProviderID: b.cfg.ProviderID, Clock: net.clock,
			Network: net.network, Logger: b.cfg.Logger, FetchInterval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		stopB2 := start(t, b2)
		got := takeAll(t, b2, 1, time.Minute)[0]
		if got.ID != id || !bytes.Equal(got.Body, msg) {
			t.Fatalf("got %v, want %v", got.ID, id)
		}
		time.Sleep(5 * time.Second)
		for _, id := range pb.entryIDs() {
			if id <= held[len(held)-1] {
				t.Errorf("b's provider still holds entry %d after Done", id)
			}
		}
		stopA()
		stopB2()
		net.close()
	})
}

// A sender dies right after Send returns, before anything left; a client
// restarted from its Store sends every message, and they arrive.
func TestSentMessagesSurviveASenderCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		st := &crashStore{}
		var finals sync.Map
		onStatus := func(s MessageStatus) { finals.Store(s.ID, s.State) }
		a, pa := net.newClient(t, 0, 35, func(c *Config) { c.Store = st })
		b, _ := net.newClient(t, 1, 36, nil)
		stopB := start(t, b)
		waitReady(t, b)
		toB, _ := b.NewContact(t.Context(), ContactOptions{})
		// a holds a document but sends nothing: it dies before its first
		// slot.
		if err := a.Connect(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := map[MessageID]string{}
		for i := range 3 {
			msg := fmt.Sprintf("sent just before the crash %d", i)
			id, err := a.Send(t.Context(), toB, []byte(msg))
			if err != nil {
				t.Fatal(err)
			}
			want[id] = msg
		}
		st.crashed.Store(true)
		if n := pa.count("send"); n != 0 {
			t.Fatalf("%d packets left before the crash", n)
		}
		st.crashed.Store(false) // the dead process writes no more

		a2 := restartFrom(t, a, st, func(c *Config) { c.OnStatus = onStatus })
		if p := a2.Pending(); len(p) != 3 {
			t.Fatalf("the restarted sender resumed %d messages, want 3", len(p))
		}
		stopA2 := start(t, a2)
		for _, m := range takeAll(t, b, 3, 2*time.Minute) {
			if want[m.ID] != string(m.Body) {
				t.Fatalf("got %v %q", m.ID, m.Body)
			}
		}
		for id := range want {
			if st := waitState(t, a2, id, time.Minute); st.State != StateAcked {
				t.Errorf("message %v: %v (%v)", id, st.State, st.Err)
			}
		}
		time.Sleep(time.Second)
		for id := range want {
			if s, ok := finals.Load(id); !ok || s != StateAcked {
				t.Errorf("OnStatus of the resumed message %v: %v", id, s)
			}
		}
		stopA2()
		stopB()
		net.close()
	})
}

// countingHandler counts log records.
type countingHandler struct {
	n     atomic.Int64
	mu    sync.Mutex
	lines []string
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.n.Add(1)
	h.mu.Lock()
	h.lines = append(h.lines, r.Level.String()+" "+r.Message)
	h.mu.Unlock()
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// The sender's provider is down for 60 s. The client says so (events,
// Ready), backs off instead of hammering it and logs far less than a line
// a second even at debug level, keeps the messages sent meanwhile, and
// sends them once the provider is back, without the application's help.
func TestAProviderDownForAMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		logs := &countingHandler{}
		var evMu sync.Mutex
		var events []ConnState
		a, pa := net.newClient(t, 0, 37, func(c *Config) {
			c.Logger = slog.New(logs)
			c.OnEvent = func(e Event) {
				evMu.Lock()
				events = append(events, e.State)
				evMu.Unlock()
			}
		})
		b, _ := net.newClient(t, 1, 38, nil)
		stopA, stopB := start(t, a), start(t, b)
		waitReady(t, a, b)
		toB, _ := b.NewContact(t.Context(), ContactOptions{})
		time.Sleep(10 * time.Second)

		pa.setDown(true)
		time.Sleep(5 * time.Second)
		if s := a.Connection().State; s != Reconnecting {
			t.Fatalf("connection %v with the provider down, want reconnecting", s)
		}
		select {
		case <-a.Ready():
			t.Fatal("Ready is closed while the provider is down")
		default:
		}
		before := logs.n.Load()
		callsBefore := pa.count("fetch") + pa.count("document") + pa.count("send")
		var ids []MessageID
		for i := range 2 {
			id, err := a.Send(t.Context(), toB, []byte(fmt.Sprintf("sent while the provider is down %d", i)))
			if err != nil {
				t.Fatalf("Send while the provider is down: %v", err)
			}
			ids = append(ids, id)
		}
		time.Sleep(55 * time.Second)
		lines := logs.n.Load() - before
		calls := pa.count("fetch") + pa.count("document") + pa.count("send") - callsBefore
		t.Logf("while down: %d log lines, %d calls to the provider", lines, calls)
		if lines >= 55 {
			logs.mu.Lock()
			t.Errorf("%d log lines in 55 s with the provider down:\n%s", lines, strings.Join(logs.lines[len(logs.lines)-int(lines):], "\n"))
			logs.mu.Unlock()
		}
		if calls > 30 {
			t.Errorf("%d calls to a provider that is down in 55 s: no backoff", calls)
		}
		ready := a.Ready()
		pa.setDown(false)
		select {
		case <-ready:
		case <-time.After(time.Minute):
			t.Fatal("Ready not closed a minute after the provider came back")
		}
		for _, m := range takeAll(t, b, 2, 2*time.Minute) {
			if !strings.HasPrefix(string(m.Body), "sent while the provider is down") {
				t.Fatalf("got %q", m.Body)
			}
		}
		for _, id := range ids {
			if st := waitState(t, a, id, time.Minute); st.State != StateAcked {
				t.Errorf("message %v: %v (%v)", id, st.State, st.Err)
			}
		}
		evMu.Lock()
		got := fmt.Sprint(events)
		evMu.Unlock()
		if !strings.HasPrefix(got, "[connected reconnecting connected") {
			t.Errorf("events %s, want connected, reconnecting, connected", got)
		}
		stopA()
		stopB()
		net.close()
	})
}

// The recipient's provider is down for a minute (it drops every packet and
// answers nobody): the sender's fragments go unacknowledged, and it tries
// again with doubling waits instead of failing the message within seconds;
// once the provider is back, the message arrives and is acknowledged.
func TestARecipientsProviderDownForAMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		a, _ := net.newClient(t, 0, 39, nil)
		b, pb := net.newClient(t, 1, 40, nil)
		stopA, stopB := start(t, a), start(t, b)
		waitReady(t, a, b)
		toB, _ := b.NewContact(t.Context(), ContactOptions{})
		net.dropAll(net.provs[1])
		pb.setDown(true)
		id, err := a.Send(t.Context(), toB, []byte("waits for the provider"))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		if st, _ := a.Status(id); st.State.Final() {
			t.Fatalf("after a minute: %v (%v), want the sender still trying", st.State, st.Err)
		}
		net.revive(net.provs[1])
		pb.setDown(false)
		if m := takeAll(t, b, 1, 5*time.Minute)[0]; m.ID != id {
			t.Fatalf("got %v", m.ID)
		}
		if st := waitState(t, a, id, 5*time.Minute); st.State != StateAcked {
			t.Fatalf("%v (%v)", st.State, st.Err)
		}
		noneWithin(t, b, 30*time.Second)
		stopA()
		stopB()
		net.close()
	})
}

// A document refresh that keeps failing while an older document is held
// is retried with backoff, not in a loop (it once ran every millisecond).
func TestAFailingDocumentRefreshBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := testParams()
		p.EpochPeriod = 2 * time.Minute
		p.LambdaP, p.LambdaL, p.LambdaD = 0.5, 0.5, 0.5
		net := newSimNet(t, 2, p)
		a, pa := net.newClient(t, 0, 41, nil)
		stop := start(t, a)
		waitReady(t, a)
		pa.mu.Lock()
		pa.docErr = fmt.Errorf("sim: %w", errSimInternal)
		pa.mu.Unlock()
		before := pa.count("document")
		time.Sleep(4 * time.Minute)
		n := pa.count("document") - before
		// A refresh every period/8 (15 s) that fails retries from 1 s,
		// doubling up to 15 s: about twenty calls in 4 minutes.
		if n > 40 {
			t.Errorf("%d document requests in 4 minutes of failing refreshes", n)
		}
		if n == 0 {
			t.Error("no refresh at all")
		}
		t.Logf("%d document requests in 4 minutes", n)
		stop()
		net.close()
	})
}

var errSimInternal = errors.New("sim: internal")

// Connect learns the epoch clock from the provider's current document
// when the client has none; a client on another clock is told so.
func TestConnectLearnsTheClockOrRefusesAWrongOne(t *testing.T) {
	net := newSimNet(t, 1, testParams())
	c2, _ := net.newClient(t, 0, 42, func(cfg *Config) { cfg.Store, cfg.Clock = &MemoryStore{}, epoch.Clock{} })
	if _, ok := c2.clock(); ok {
		t.Fatal("a client without a clock knows one")
	}
	if err := c2.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	clk, ok := c2.clock()
	if !ok || !clk.Genesis().Equal(net.clock.Genesis()) || clk.Period() != net.clock.Period() || clk.Grace() != net.clock.Grace() {
		t.Fatalf("learned %v, want the network's clock", clk)
	}
	// Kept in the Store: a restart knows it without asking.
	c3 := restartFrom(t, c2, c2.store, nil)
	if clk3, ok := c3.clock(); !ok || !clk3.Genesis().Equal(clk.Genesis()) || clk3.Period() != clk.Period() || clk3.Grace() != clk.Grace() {
		t.Fatal("the learned clock is not in the Store")
	}

	wrong, err := epoch.New(net.clock.Genesis().Add(time.Second), net.clock.Period(), net.clock.Grace())
	if err != nil {
		t.Fatal(err)
	}
	w, _ := net.newClient(t, 0, 43, func(cfg *Config) { cfg.Clock = wrong })
	if err := w.Connect(t.Context()); !errors.Is(err, ErrWrongClock) {
		t.Fatalf("Connect on a wrong clock: %v, want ErrWrongClock", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := w.Run(ctx); !errors.Is(err, ErrWrongClock) {
		t.Fatalf("Run on a wrong clock: %v, want ErrWrongClock", err)
	}
}

// The file store writes atomically, keeps its file owner-only, and lets
// one process at a time use a state.
func TestFileStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := s.Load(); err != nil || b != nil {
		t.Fatalf("a new store loads %q, %v", b, err)
	}
	for _, v := range []string{"one", "two"} {
		if err := s.Save([]byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := s.Load(); string(b) != "two" {
		t.Fatalf("loaded %q", b)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 2 {
		t.Errorf("%d files beside the state, want the state and its lock", len(entries))
	}
	if _, err := OpenFileStore(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second open: %v, want ErrLocked", err)
	}
	// Another process.
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileStoreHelperProcess$")
	cmd.Env = append(os.Environ(), "SOTTO_CLIENT_TEST_STATE="+path)
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "in use by another process") || !strings.Contains(string(out), fmt.Sprint(os.Getpid())) {
		t.Fatalf("a second process opening the state said:\n%s", out)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenFileStore(path)
	if err != nil {
		t.Fatalf("reopening after Close: %v", err)
	}
	s2.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileStore(path); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("a state others can read: %v", err)
	}
}

func TestFileStoreHelperProcess(t *testing.T) {
	path := os.Getenv("SOTTO_CLIENT_TEST_STATE")
	if path == "" {
		t.Skip("run by TestFileStore as another process")
	}
	_, err := OpenFileStore(path)
	fmt.Println(err)
}

// A client's identity is part of its state: a client built from the Store
// alone is the same user, and a Store of another identity is refused.
func TestTheIdentityLivesInTheStore(t *testing.T) {
	net := newSimNet(t, 1, testParams())
	st := &MemoryStore{}
	a, _ := net.newClient(t, 0, 44, func(cfg *Config) { cfg.Identity, cfg.Store = nil, st })
	if st.Saves() == 0 {
		t.Fatal("a fresh identity was not saved at once")
	}
	a2 := restartFrom(t, a, st, nil)
	if !bytes.Equal(a2.MessageKey(), a.MessageKey()) {
		t.Fatal("message keys differ")
	}
	other, _ := net.newClient(t, 0, 45, nil)
	if _, err := New(Config{Store: st, Identity: other.Identity(), Provider: other.cfg.Provider, ProviderID: net.provs[0]}); !errors.Is(err, ErrState) {
		t.Fatalf("a Store of another identity: %v, want ErrState", err)
	}
}

// The same message twice (its entries fetched again by a restarted
// client whose acknowledgements never reached the provider, and copies
// as retransmissions leave them) is handed to the application once: the
// IDs of delivered messages are saved with the state before anything is
// acknowledged.
func TestNoDuplicateDeliveryAfterRefetchesAndRetransmissions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		a, _ := net.newClient(t, 0, 46, nil)
		st := &MemoryStore{}
		b, pb := net.newClient(t, 1, 47, func(c *Config) { c.Store = st })
		pb.failAcks = true
		stopA, stopB := start(t, a), start(t, b)
		waitReady(t, a, b)
		toB, _ := b.NewContact(t.Context(), ContactOptions{})
		capacity := fragCapacity(int(testParams().PayloadLen))
		id, err := a.Send(t.Context(), toB, body(capacity+1, 3))
		if err != nil {
			t.Fatal(err)
		}
		if m := takeAll(t, b, 1, time.Minute)[0]; m.ID != id {
			t.Fatalf("got %v", m.ID)
		}
		stopB()
		pb.duplicate()
		pb.mu.Lock()
		pb.failAcks = false
		pb.mu.Unlock()
		b2 := restartFrom(t, b, st, nil)
		stopB2 := start(t, b2)
		noneWithin(t, b2, time.Minute)
		if s := b2.Stats(); s.Duplicates < 4 {
			t.Errorf("%d duplicates seen, want the 2 fragments refetched and their 2 copies", s.Duplicates)
		}
		stopA()
		stopB2()
		net.close()
	})
}

// A message that fails while its slot is built (here: its recipient's
// provider left the document) is reported once, whatever the slot then
// sends. (The slot used to report it again after sending the decoy that
// filled it: the one failure OnStatus once reported twice.)
func TestAFailureIsReportedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := newSimNet(t, 2, testParams())
		var mu sync.Mutex
		reports := map[MessageID]int{}
		a, _ := net.newClient(t, 0, 48, func(c *Config) {
			c.OnStatus = func(s MessageStatus) {
				mu.Lock()
				reports[s.ID]++
				mu.Unlock()
			}
		})
		if err := a.Connect(t.Context()); err != nil {
			t.Fatal(err)
		}
		a.mu.Lock()
		a.started = true
		a.updateConn(time.Now())
		a.mu.Unlock()
		to := &Contact{Network: net.network, Key: a.MessageKey(), Provider: net.provs[1], Mailbox: [32]byte{1}}
		id, err := a.Send(t.Context(), to, []byte("to a provider about to leave"))
		if err != nil {
			t.Fatal(err)
		}
		e := net.clock.Now()
		restore := net.withhold(e, net.provs[1])
		defer restore()
		if _, err := a.fetchDocument(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			a.slot(t.Context(), cover.Payload)
		}
		if st, _ := a.Status(id); st.State != StateFailed || !errors.Is(st.Err, ErrUnknownProvider) {
			t.Fatalf("status %v (%v)", st.State, st.Err)
		}
		a.mu.Lock()
		a.maintain(time.Now().Add(time.Hour))
		a.mu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		if reports[id] != 1 {
			t.Fatalf("the failure was reported %d times", reports[id])
		}
		net.close()
	})
}
