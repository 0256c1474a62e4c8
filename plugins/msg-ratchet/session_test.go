package msgratchet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
)

// user is one local user: its KV outlives the Ratchet (reopen is a
// restart).
type user struct {
	t   *testing.T
	kv  interfaces.KV
	r   *Ratchet
	now *time.Time
}

func newUser(t *testing.T, now *time.Time) *user {
	t.Helper()
	u := &user{t: t, kv: memkv.New(), now: now}
	u.reopen()
	return u
}

func (u *user) reopen() {
	u.t.Helper()
	opts := Options{}
	if u.now != nil {
		opts.Now = func() time.Time { return *u.now }
	}
	r, err := OpenWith(context.Background(), u.kv, "ratchet", opts)
	if err != nil {
		u.t.Fatal(err)
	}
	u.r = r
}

// copyOf opens a second Ratchet on a copy of u's state as it is now: what
// an attacker who stole the state holds.
func (u *user) copyOf() *Ratchet {
	u.t.Helper()
	ctx := context.Background()
	dst := memkv.New()
	keys, err := u.kv.KVList(ctx, &interfaces.KVListRequest{Namespace: "ratchet", Limit: 1 << 20})
	if err != nil {
		u.t.Fatal(err)
	}
	vals, err := u.kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: "ratchet", Keys: keys.Keys})
	if err != nil {
		u.t.Fatal(err)
	}
	var es []interfaces.KVEntry
	for i, k := range keys.Keys {
		es = append(es, interfaces.KVEntry{Key: k, Value: vals.Values[i]})
	}
	if _, err := dst.KVPut(ctx, &interfaces.KVPutRequest{Namespace: "ratchet", Entries: es}); err != nil {
		u.t.Fatal(err)
	}
	r, err := Open(ctx, dst, "ratchet")
	if err != nil {
		u.t.Fatal(err)
	}
	return r
}

func (u *user) card() []byte {
	u.t.Helper()
	c, err := u.r.ContactCard(context.Background(), nil)
	if err != nil {
		u.t.Fatal(err)
	}
	return c.Card
}

func (u *user) start(peer *user) interfaces.SessionID {
	u.t.Helper()
	s, err := u.r.StartSession(context.Background(), &interfaces.StartSessionRequest{PeerCard: peer.card()})
	if err != nil {
		u.t.Fatal(err)
	}
	return s.Session
}

func (u *user) enc(s interfaces.SessionID, body string) []byte {
	u.t.Helper()
	ct, err := u.r.Encrypt(context.Background(), &interfaces.EncryptRequest{Session: s, Body: []byte(body)})
	if err != nil {
		u.t.Fatal(err)
	}
	return ct.Ciphertext
}

func decrypt(r *Ratchet, ct []byte) (*interfaces.DecryptResponse, error) {
	return r.Decrypt(context.Background(), &interfaces.DecryptRequest{Ciphertext: ct})
}

func (u *user) dec(ct []byte, want string) interfaces.SessionID {
	u.t.Helper()
	r, err := decrypt(u.r, ct)
	if err != nil {
		u.t.Fatalf("decrypt %q: %v", want, err)
	}
	if string(r.Body) != want {
		u.t.Fatalf("decrypted %q, want %q", r.Body, want)
	}
	return r.Session
}

func (u *user) session(id interfaces.SessionID) *session {
	u.t.Helper()
	u.r.mu.Lock()
	defer u.r.mu.Unlock()
	s, err := u.r.getSession(context.Background(), id)
	if err != nil {
		u.t.Fatal(err)
	}
	return s
}

// Messages of one chain, delivered out of order, some lost, some twice,
// and replayed after the chain has closed: each delivered message opens
// exactly once, every second delivery is ErrReplay, and the lost ones
// leave their keys behind, within the bound.
func TestReorderedLostDuplicatedReplayed(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name       string
		n          int
		lose       map[int]bool
		restartMid bool
	}{
		{"reordered", 20, nil, false},
		{"reordered with losses", 20, map[int]bool{0: true, 7: true, 19: true}, false},
		{"reordered across a restart of the receiver", 20, map[int]bool{3: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice, bob := newUser(t, nil), newUser(t, nil)
			sa := alice.start(bob)
			cts := make([][]byte, tc.n)
			for i := range cts {
				cts[i] = alice.enc(sa, fmt.Sprint("m", i))
			}
			order := rng.Perm(tc.n)
			var sb interfaces.SessionID
			opened := 0
			for k, i := range order {
				if tc.lose[i] {
					continue
				}
				if tc.restartMid && k == tc.n/2 {
					bob.reopen()
				}
				sb = bob.dec(cts[i], fmt.Sprint("m", i))
				opened++
				// A duplicate, at once: refused, and harmless.
				if _, err := decrypt(bob.r, cts[i]); !errors.Is(err, interfaces.ErrReplay) {
					t.Fatalf("duplicate of m%d: err = %v, want ErrReplay", i, err)
				}
			}
			want, top := 0, 0
			for i := range tc.n {
				if !tc.lose[i] {
					top = i
				}
			}
			for i := range tc.lose {
				if i < top {
					want++
				}
			}
			if got := len(bob.session(sb).Skipped); got != want {
				t.Errorf("%d skipped keys kept, want %d (the lost messages before the last delivered)", got, want)
			}
			// The chain closes with a round trip; old messages stay refused.
			alice.dec(bob.enc(sb, "reply"), "reply")
			bob.dec(alice.enc(sa, "next"), "next")
			for i := range cts {
				if tc.lose[i] {
					continue
				}
				if _, err := decrypt(bob.r, cts[i]); !errors.Is(err, interfaces.ErrReplay) {
					t.Fatalf("replay of m%d after the chain closed: err = %v, want ErrReplay", i, err)
				}
			}
			// A lost message that arrives late still opens, once.
			for i := range tc.lose {
				bob.dec(cts[i], fmt.Sprint("m", i))
			}
		})
	}
}

// An attacker who copies Bob's whole state reads what Alice sends until
// one round trip has happened; after it (Bob answers, Alice ratchets), the
// copy opens nothing new: post-compromise security.
func TestStolenStateHealsAfterOneRoundTrip(t *testing.T) {
	alice, bob := newUser(t, nil), newUser(t, nil)
	sa := alice.start(bob)
	sb := bob.dec(alice.enc(sa, "hello"), "hello")
	alice.dec(bob.enc(sb, "hi"), "hi")

	stolen := bob.copyOf()
	before := alice.enc(sa, "before the round trip")
	if r, err := decrypt(stolen, before); err != nil || string(r.Body) != "before the round trip" {
		t.Fatalf("the stolen state does not open the current chain (err %v): the test shows nothing", err)
	}
	bob.dec(before, "before the round trip")
	alice.dec(bob.enc(sb, "answer"), "answer")
	after := alice.enc(sa, "after the round trip")
	if _, err := decrypt(stolen, after); !errors.Is(err, interfaces.ErrDecrypt) {
		t.Fatalf("stolen state on a message after one round trip: err = %v, want ErrDecrypt", err)
	}
	bob.dec(after, "after the round trip")
}

// A sender that skips more than MaxSkip messages at once is refused
// without harm; skipped keys accumulated over many chains stay within
// MaxSkipped, the oldest dropped first (their messages then give
// ErrReplay).
func TestSkippedFloodHeldToTheBound(t *testing.T) {
	{
		carol, dave := newUser(t, nil), newUser(t, nil)
		sc := carol.start(dave)
		first := carol.enc(sc, "first")
		var last []byte
		for i := range MaxSkip + 1 {
			last = carol.enc(sc, fmt.Sprint("m", i))
		}
		if _, err := decrypt(dave.r, last); !errors.Is(err, interfaces.ErrDecrypt) {
			t.Fatalf("a message %d ahead: err = %v, want ErrDecrypt", MaxSkip+1, err)
		}
		dave.dec(first, "first") // nothing changed
	}
	alice, bob := newUser(t, nil), newUser(t, nil)
	sa := alice.start(bob)
	sb := bob.dec(alice.enc(sa, "first"), "first")
	alice.dec(bob.enc(sb, "r"), "r")

	var firstOfChains [][]byte
	for round := range 3 {
		var msgs [][]byte
		for i := range MaxSkip {
			msgs = append(msgs, alice.enc(sa, fmt.Sprint(round, "/", i)))
		}
		firstOfChains = append(firstOfChains, msgs[0])
		bob.dec(msgs[MaxSkip-1], fmt.Sprint(round, "/", MaxSkip-1))
		if n := len(bob.session(sb).Skipped); n > MaxSkipped {
			t.Fatalf("round %d: %d skipped keys kept, bound %d", round, n, MaxSkipped)
		}
		alice.dec(bob.enc(sb, "r"), "r")
	}
	if n := len(bob.session(sb).Skipped); n != MaxSkipped {
		t.Fatalf("%d skipped keys kept after %d skipped messages, want exactly the bound %d", n, 3*(MaxSkip-1), MaxSkipped)
	}
	if _, err := decrypt(bob.r, firstOfChains[0]); !errors.Is(err, interfaces.ErrReplay) {
		t.Errorf("a message whose skipped key was dropped: err = %v, want ErrReplay", err)
	}
	bob.dec(firstOfChains[2], "2/0") // the newest skipped keys are kept
}

// The signed prekey rotates, one-time prekeys are used once and topped
// up, a replaced signed prekey opens first messages for PrekeyKeep and
// not after, and a first message is never taken twice.
func TestPrekeysRotateAndReplenish(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	bob := newUser(t, &now)
	alice, carol, dave := newUser(t, nil), newUser(t, nil), newUser(t, nil)
	card1 := bob.card()
	c1, err := parseCard(card1)
	if err != nil {
		t.Fatal(err)
	}
	if len(c1.opks) != DefaultCardOPKs {
		t.Fatalf("card carries %d one-time prekeys, want %d", len(c1.opks), DefaultCardOPKs)
	}
	s, err := alice.r.StartSession(context.Background(), &interfaces.StartSessionRequest{PeerCard: card1})
	if err != nil {
		t.Fatal(err)
	}
	first := alice.enc(s.Session, "hello")
	h, _, _ := parseHeader(first)
	used := h.opkID()
	bob.dec(first, "hello")

	c2, _ := parseCard(bob.card())
	if len(c2.opks) != DefaultCardOPKs {
		t.Fatalf("card after one use carries %d one-time prekeys, want %d (replenished)", len(c2.opks), DefaultCardOPKs)
	}
	for _, o := range c2.opks {
		if o.id == used {
			t.Fatalf("a used one-time prekey (%d) is still handed out", used)
		}
	}

	now = now.Add(DefaultSPKRotation + time.Hour)
	c3, _ := parseCard(bob.card())
	if c3.spkID == c1.spkID {
		t.Fatal("the signed prekey did not rotate")
	}
	// A card handed out before the rotation still starts a session.
	sc, err := carol.r.StartSession(context.Background(), &interfaces.StartSessionRequest{PeerCard: card1})
	if err != nil {
		t.Fatal(err)
	}
	bob.dec(carol.enc(sc.Session, "from carol, old card"), "from carol, old card")

	// A first message replayed after its session ended opens no second one.
	sb := bob.dec(alice.enc(s.Session, "again"), "again")
	if _, err := bob.r.EndSession(context.Background(), &interfaces.EndSessionRequest{Session: sb}); err != nil {
		t.Fatal(err)
	}
	if _, err := decrypt(bob.r, first); !errors.Is(err, interfaces.ErrReplay) {
		t.Fatalf("first message replayed after its session ended: err = %v, want ErrReplay", err)
	}

	// Past the keep time it does not: the old prekeys are gone.
	sd, err := dave.r.StartSession(context.Background(), &interfaces.StartSessionRequest{PeerCard: card1})
	if err != nil {
		t.Fatal(err)
	}
	late := dave.enc(sd.Session, "too late")
	now = now.Add(DefaultPrekeyKeep + time.Hour)
	bob.card()
	bob.reopen()
	if _, err := decrypt(bob.r, late); !errors.Is(err, interfaces.ErrDecrypt) {
		t.Fatalf("first message on a deleted prekey: err = %v, want ErrDecrypt", err)
	}

}

// Both start a session with each other before hearing back: each side's
// messages open, and after one exchange both converge on sessions that
// keep working.
func TestSimultaneousStart(t *testing.T) {
	alice, bob := newUser(t, nil), newUser(t, nil)
	sa, sb := alice.start(bob), bob.start(alice)
	a1, b1 := alice.enc(sa, "a1"), bob.enc(sb, "b1")
	bob.dec(a1, "a1")
	alice.dec(b1, "b1")
	for i := range 3 {
		sa, sb = alice.start(bob), bob.start(alice) // the active sessions now
		bob.dec(alice.enc(sa, fmt.Sprint("a", i)), fmt.Sprint("a", i))
		alice.dec(bob.enc(sb, fmt.Sprint("b", i)), fmt.Sprint("b", i))
	}
}

// A first message naming a sender whose identity signature does not
// cover the DH identity key it carries is refused: nobody starts a
// session in someone else's name.
func TestImpersonatedStartRefused(t *testing.T) {
	alice, bob, mallory := newUser(t, nil), newUser(t, nil), newUser(t, nil)
	sm := mallory.start(bob)
	ct := mallory.enc(sm, "I am alice")
	forged := append([]byte(nil), ct...)
	copy(forged[2:34], alice.r.signPub())
	if _, err := decrypt(bob.r, forged); !errors.Is(err, interfaces.ErrDecrypt) {
		t.Fatalf("a start in alice's name with mallory's keys: err = %v, want ErrDecrypt", err)
	}
}
