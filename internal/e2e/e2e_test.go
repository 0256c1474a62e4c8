package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"sync"
	"testing"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/messagingtest"
	msgratchet "github.com/sottonet/sotto/plugins/msg-ratchet"
)

type opened struct {
	c  *client.Client
	st *client.MemoryStore
}

// users are clients (no network: New does no I/O) whose messaging layer is
// the ratchet on the client's own state. Close saves the client's state to
// its Store, as a running client does after every change, and Open builds
// a new client from the Store: a restart.
type users struct {
	grpc   bool
	mu     sync.Mutex
	stores map[string]*client.MemoryStore
	open   map[interfaces.Messaging]opened
}

func newUsers(grpc bool) *users {
	return &users{grpc: grpc, stores: map[string]*client.MemoryStore{}, open: map[interfaces.Messaging]opened{}}
}

// withRatchet opens the ratchet on a client's state and hands it back.
func withRatchet(r **msgratchet.Ratchet) func(kv *client.MessagingKV) (client.Messaging, error) {
	return func(kv *client.MessagingKV) (client.Messaging, error) {
		var err error
		*r, err = msgratchet.Open(context.Background(), KV(kv), Namespace)
		return Adapt(*r), err
	}
}

func (u *users) Open(t *testing.T, name string) interfaces.Messaging {
	t.Helper()
	u.mu.Lock()
	st := u.stores[name]
	if st == nil {
		st = &client.MemoryStore{}
		u.stores[name] = st
	}
	u.mu.Unlock()
	var r *msgratchet.Ratchet
	c, err := client.New(offline(client.Config{Store: st, Network: "e2e-test", Messaging: withRatchet(&r)}))
	if err != nil {
		t.Fatal(err)
	}
	var m interfaces.Messaging = r
	if u.grpc {
		m = messagingtest.OverGRPC(t, r)
	}
	u.mu.Lock()
	u.open[m] = opened{c, st}
	u.mu.Unlock()
	return m
}

func (u *users) Close(t *testing.T, m interfaces.Messaging) {
	t.Helper()
	u.mu.Lock()
	o := u.open[m]
	delete(u.open, m)
	u.mu.Unlock()
	b, err := o.c.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if err := o.st.Save(b); err != nil {
		t.Fatal(err)
	}
}

// The messaging conformance suite, with the ratchet's state in the
// client's own state (client.MessagingKV through KV), in process and over
// a go-plugin gRPC connection.
func TestConformanceOnTheClientsState(t *testing.T) {
	t.Run("in process", func(t *testing.T) {
		messagingtest.Run(t, func(t *testing.T) messagingtest.Users { return newUsers(false) })
	})
	t.Run("over gRPC", func(t *testing.T) {
		messagingtest.Run(t, func(t *testing.T) messagingtest.Users { return newUsers(true) })
	})
}

// A client whose state is not saved after a Decrypt (a crash before the
// save that also holds the opened message) comes back with the ratchet as
// it was: the message opens again (its fragments were not acknowledged
// either), once. After the save it is a replay.
func TestACrashBeforeTheSaveOpensTheMessageAgain(t *testing.T) {
	ctx := context.Background()
	u := newUsers(false)
	alice, bob := u.Open(t, "alice"), u.Open(t, "bob")
	card, err := bob.ContactCard(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := alice.StartSession(ctx, &interfaces.StartSessionRequest{PeerCard: card.Card})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := alice.Encrypt(ctx, &interfaces.EncryptRequest{Session: s.Session, Body: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	u.Close(t, bob) // saved before the message arrives
	bob = u.Open(t, "bob")
	if _, err := bob.Decrypt(ctx, &interfaces.DecryptRequest{Ciphertext: ct.Ciphertext}); err != nil {
		t.Fatal(err)
	}
	// Crash: no save. The restarted client opens it again.
	bob = u.Open(t, "bob")
	if r, err := bob.Decrypt(ctx, &interfaces.DecryptRequest{Ciphertext: ct.Ciphertext}); err != nil || string(r.Body) != "hello" {
		t.Fatalf("after a crash before the save: %v", err)
	}
	u.Close(t, bob)
	bob = u.Open(t, "bob")
	if _, err := bob.Decrypt(ctx, &interfaces.DecryptRequest{Ciphertext: ct.Ciphertext}); !errors.Is(err, interfaces.ErrReplay) {
		t.Fatalf("after the save: err = %v, want ErrReplay", err)
	}
}

// A program that loads a state with LoadState after New (the demo does)
// gets the messaging layer of that state, not the one New made.
func TestLoadStateRebuildsTheMessagingLayer(t *testing.T) {
	ctx := context.Background()
	_, id, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var r1, r2 *msgratchet.Ratchet
	c1, err := client.New(offline(client.Config{Identity: id, Network: "e2e-test", Messaging: withRatchet(&r1)}))
	if err != nil {
		t.Fatal(err)
	}
	want, err := r1.ContactCard(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c1.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := client.New(offline(client.Config{Identity: id, Network: "e2e-test", Messaging: withRatchet(&r2)}))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := r2.ContactCard(ctx, nil); bytes.Equal(got.Identity, want.Identity) {
		t.Fatal("two fresh states made one messaging identity: the test shows nothing")
	}
	if err := c2.LoadState(b); err != nil {
		t.Fatal(err)
	}
	if got, _ := r2.ContactCard(ctx, nil); !bytes.Equal(got.Identity, want.Identity) {
		t.Fatalf("after LoadState the messaging identity is %x, want the state's %x", got.Identity[:8], want.Identity[:8])
	}
}

// The adapter from the client's state to interfaces.KV: what the ratchet
// relies on, and clear refusals for what the client's state does not keep.
func TestKVAdapter(t *testing.T) {
	ctx := context.Background()
	c, err := client.New(offline(client.Config{Network: "e2e-test"}))
	if err != nil {
		t.Fatal(err)
	}
	kv := KV(c.MessagingKV())
	put := func(ns string, es ...interfaces.KVEntry) (*interfaces.KVPutResponse, error) {
		return kv.KVPut(ctx, &interfaces.KVPutRequest{Namespace: ns, Entries: es})
	}
	if r, err := put("ns", interfaces.KVEntry{Key: []byte("a"), Value: []byte("1")}, interfaces.KVEntry{Key: []byte("b"), Value: []byte("2")},
		interfaces.KVEntry{Key: []byte("a"), Value: []byte("x"), IfAbsent: true}); err != nil || !r.Applied[0] || !r.Applied[1] || r.Applied[2] {
		t.Fatalf("put: %+v, %v", r, err)
	}
	g, err := kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: "ns", Keys: [][]byte{[]byte("a"), []byte("zz")}})
	if err != nil || !g.Found[0] || string(g.Values[0]) != "1" || g.Found[1] {
		t.Fatalf("get: %+v, %v", g, err)
	}
	l, err := kv.KVList(ctx, &interfaces.KVListRequest{Namespace: "ns", After: []byte("a")})
	if err != nil || len(l.Keys) != 1 || string(l.Keys[0]) != "b" {
		t.Fatalf("list after a: %+v, %v", l, err)
	}
	if _, err := kv.KVDelete(ctx, &interfaces.KVDeleteRequest{Namespace: "ns", Keys: [][]byte{[]byte("a"), []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	if g, _ := kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: "ns", Keys: [][]byte{[]byte("a")}}); g.Found[0] {
		t.Fatal("a deleted key is found")
	}
	for _, tc := range []struct {
		name string
		ns   string
		e    interfaces.KVEntry
	}{
		{"no namespace", "", interfaces.KVEntry{Key: []byte("k")}},
		{"an empty key", "ns", interfaces.KVEntry{}},
		{"a lifetime", "ns", interfaces.KVEntry{Key: []byte("k"), Lifetime: 1}},
	} {
		if _, err := put(tc.ns, tc.e); !errors.Is(err, interfaces.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want ErrInvalidArgument", tc.name, err)
		}
	}
	// What was written is in the client's state, and comes back from it.
	b, err := c.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	st := &client.MemoryStore{}
	if err := st.Save(b); err != nil {
		t.Fatal(err)
	}
	c2, err := client.New(offline(client.Config{Store: st}))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := c2.MessagingKV().Get("ns", []byte("b")); !ok || !bytes.Equal(v, []byte("2")) {
		t.Fatalf("after a restart: %q, %v", v, ok)
	}
}

// offline completes cfg for a client that never runs (New does no I/O):
// these tests use its state and its messaging layer, not the network.
func offline(cfg client.Config) client.Config {
	cfg.ProviderID = [32]byte{1}
	cfg.Dial = func(context.Context, ed25519.PrivateKey) (client.Provider, error) {
		return nil, errors.New("e2e test: no network")
	}
	return cfg
}

// A client's contacts carry its messaging card (one that starts a session
// with its messaging identity), unless made with NoCard.
func TestContactsCarryTheCard(t *testing.T) {
	ctx := context.Background()
	var r *msgratchet.Ratchet
	c, err := client.New(offline(client.Config{Network: "e2e-test", Messaging: withRatchet(&r)}))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := c.NewContact(ctx, client.ContactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := client.ParseContact(ct.String())
	if err != nil || len(parsed.Card) == 0 {
		t.Fatalf("contact %v without a card (%v)", ct, err)
	}
	var peer *msgratchet.Ratchet
	if _, err := client.New(offline(client.Config{Network: "e2e-test", Messaging: withRatchet(&peer)})); err != nil {
		t.Fatal(err)
	}
	s, err := peer.StartSession(ctx, &interfaces.StartSessionRequest{PeerCard: parsed.Card})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := peer.Encrypt(ctx, &interfaces.EncryptRequest{Session: s.Session, Body: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Decrypt(ctx, &interfaces.DecryptRequest{Ciphertext: sealed.Ciphertext}); err != nil || string(got.Body) != "hi" {
		t.Fatalf("the contact's card does not reach the client's layer: %v", err)
	}
	bare, err := c.NewContact(ctx, client.ContactOptions{NoCard: true})
	if err != nil || bare.Card != nil {
		t.Fatalf("NoCard: card %x, %v", bare.Card, err)
	}
}
