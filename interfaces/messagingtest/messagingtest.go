// Package messagingtest is the conformance suite of the Messaging plugin
// kind: two users exchange messages through an implementation, in process
// or over gRPC (OverGRPC), and the suite checks the contract of
// interfaces/messaging.go: sessions from contact cards, both directions,
// reordering, replays and forgeries refused without harming the session,
// and state that survives a restart. The cases, by the names they run
// under:
//
//   - messages flow both ways from a contact card
//   - starting twice with one card reuses the session
//   - reordered messages are all read
//   - a replayed message is refused and harms nothing
//   - a forged message is refused and harms nothing
//   - bad cards, unknown sessions and big bodies are refused
//   - sessions survive a restart of both users (Users.Close, then Open)
//   - an ended session is gone
//   - a cancelled call fails with the context's error and a cancelled
//     decrypt can be retried
//   - concurrent encrypts on one session all decrypt
//
// To run it against a plugin's real binary, see plugintest.Build and
// plugintest.Process.
package messagingtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/plugintest"
)

// Users opens and closes the users of one subtest.
type Users interface {
	// Open returns the user called name. Opening a name again after Close
	// must resume that user's state: that is a restart.
	Open(t *testing.T, name string) interfaces.Messaging
	// Close stops a user returned by Open.
	Close(t *testing.T, m interfaces.Messaging)
}

// OverGRPC returns m as seen by a host through a real go-plugin gRPC
// connection in this process.
func OverGRPC(t testing.TB, m interfaces.Messaging) interfaces.Messaging {
	t.Helper()
	return plugintest.GRPC(t, interfaces.MessagingKind, m).(interfaces.Messaging)
}

// Run runs the suite; users returns a fresh, empty world per subtest.
func Run(t *testing.T, users func(t *testing.T) Users) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, u Users)
	}{
		{"messages flow both ways from a contact card", bothWays},
		{"starting twice with one card reuses the session", startTwice},
		{"reordered messages are all read", reordered},
		{"a replayed message is refused and harms nothing", replayed},
		{"a forged message is refused and harms nothing", forged},
		{"bad cards, unknown sessions and big bodies are refused", badInput},
		{"sessions survive a restart of both users", restart},
		{"an ended session is gone", ended},
		{"a cancelled call fails with the context's error and a cancelled decrypt can be retried", cancelled},
		{"concurrent encrypts on one session all decrypt", concurrentEncrypts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, users(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func card(t *testing.T, m interfaces.Messaging) *interfaces.ContactCardResponse {
	t.Helper()
	c, err := m.ContactCard(ctx(t), &interfaces.ContactCardRequest{})
	if err != nil {
		t.Fatalf("ContactCard: %v", err)
	}
	if len(c.Card) == 0 || len(c.Card) > interfaces.MaxContactCardLen || len(c.Identity) == 0 {
		t.Fatalf("ContactCard gave a card of %d bytes and an identity of %d", len(c.Card), len(c.Identity))
	}
	return c
}

func start(t *testing.T, from, to interfaces.Messaging) interfaces.SessionID {
	t.Helper()
	r, err := from.StartSession(ctx(t), &interfaces.StartSessionRequest{PeerCard: card(t, to).Card})
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	return r.Session
}

func enc(t *testing.T, m interfaces.Messaging, s interfaces.SessionID, body string) []byte {
	t.Helper()
	r, err := m.Encrypt(ctx(t), &interfaces.EncryptRequest{Session: s, Body: []byte(body)})
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return r.Ciphertext
}

func dec(t *testing.T, m interfaces.Messaging, ct []byte, want string) *interfaces.DecryptResponse {
	t.Helper()
	r, err := m.Decrypt(ctx(t), &interfaces.DecryptRequest{Ciphertext: ct})
	if err != nil {
		t.Fatalf("Decrypt(%q): %v", want, err)
	}
	if string(r.Body) != want {
		t.Fatalf("Decrypt = %q, want %q", r.Body, want)
	}
	return r
}

func bothWays(t *testing.T, u Users) {
	alice, bob := u.Open(t, "alice"), u.Open(t, "bob")
	sa := start(t, alice, bob)
	first := dec(t, bob, enc(t, alice, sa, "hello bob"), "hello bob")
	if !first.Created {
		t.Error("the first message did not create bob's session")
	}
	if !bytes.Equal(first.PeerIdentity, card(t, alice).Identity) {
		t.Error("bob sees a peer identity that is not alice's")
	}
	sb := first.Session
	if r := dec(t, bob, enc(t, alice, sa, "second"), "second"); r.Created || r.Session != sb {
		t.Errorf("alice's second message: created=%v session=%x, want bob's existing session", r.Created, r.Session)
	}
	for i := range 3 { // several turns, each a DH ratchet step
		dec(t, alice, enc(t, bob, sb, fmt.Sprint("bob ", i)), fmt.Sprint("bob ", i))
		dec(t, bob, enc(t, alice, sa, fmt.Sprint("alice ", i)), fmt.Sprint("alice ", i))
	}
	empty := dec(t, alice, enc(t, bob, sb, ""), "")
	if empty.Session != sa {
		t.Errorf("alice read bob's message in session %x, want %x", empty.Session, sa)
	}
}

func startTwice(t *testing.T, u Users) {
	alice, bob := u.Open(t, "alice"), u.Open(t, "bob")
	s1 := start(t, alice, bob)
	r, err := alice.StartSession(ctx(t), &interfaces.StartSessionRequest{PeerCard: card(t, bob).Card})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Existing || r.Session != s1 {
		t.Errorf("second StartSession = %+v, want the existing session %x", r, s1)
	}
}

func reordered(t *testing.T, u Users) {
	alice, bob := u.Open(t, "alice"), u.Open(t, "bob")
	sa := start(t, alice, bob)
	var cts [][]byte
	for i := range 5 {
		cts = append(cts, enc(t, alice, sa, fmt.Sprint(i)))
	}
	sb := dec(t, bob, cts[0], "0").Session
	for _, i := range []int{3, 1, 4, 2} {
		dec(t, bob, cts[i], fmt.Sprint(i))
	}
	// Across a ratchet step: bob answers, alice sends on a new chain while
	// one message of her old chain is still in flight.
	late := enc(t, alice, sa, "late")
	dec(t, alice, enc(t, bob, sb, "turn"), "turn")
	dec(t, bob, enc(t, alice, sa, "new chain"), "new chain")
	dec(t, bob, late, "late")
}

func replayed(t *testing.T, u Users) {
	alice, bob := u.Open(t, "alice"), u.Open(t, "bob")
	sa := start(t, alice, bob)
	ct0 := enc(t, alice, sa, "once")
	dec(t, bob, ct0, "once")
	ct1 := enc(t, alice, sa, "only once")
	dec(t, bob, ct1, "only once")
	for _, ct := range [][]byte{ct0, ct1} {
		if _, err := bob.Decrypt(ctx(t), &interfaces.DecryptRequest{Ciphertext: ct}); !errors.Is(err, interfaces.ErrReplay) {
			t.Errorf("replay: err = %v, want ErrReplay", err)
		}
	}
	dec(t, bob, enc(t, alice, sa, "after"), "after")
}

func forged(t *testing.T, u Users) {
	alice, bob := u.Open(t, "alice"), u.Open(t, "bob")
	sa := start(t, alice, bob)
	dec(t, bob, enc(t, alice, sa, "hi"), "hi")
	ct := enc(t, alice, sa, "genuine")
	for _, at := range []int{0, len(ct) / 2, len(ct) - 1} {
		bad := bytes.Clone(ct)
		bad[at] ^= 0x40
		if _, err := bob.Decrypt(ctx(t), &interfaces.DecryptRequest{Ciphertext: bad}); !errors.Is(err, interfaces.ErrDecrypt) {
			t.Errorf("byte %d flipped: err = %v, want ErrDecrypt", at, err)
		}
	}
	for _, junk := range [][]byte{nil, {1}, bytes.Repeat([]byte{7}, 200)} {
		if _, err := bob.Decrypt(ctx(t), &interfaces.DecryptRequest{Ciphertext: junk}); !errors.Is(err, interfaces.ErrDecrypt) {
			t.Errorf("junk of %d bytes: err = %v, want ErrDecrypt", len(junk), err)
		}
	}
	dec(t, bob, ct, "genuine")
}

func badInput(t *testing.T, u Users) {
	alice, bob := u.Open(t, "alice"), u.Open(t, "bob")
	c := card(t, bob).Card
	broken := bytes.Clone(c)
	broken[len(broken)-1] ^= 1
	for name, bad := range map[string][]byte{"empty": nil, "truncated": c[:len(c)/2], "bad signature": broken} {
		if _, err := alice.StartSession(ctx(t), &interfaces.StartSessionRequest{PeerCard: bad}); !errors.Is(err, interfaces.ErrInvalidArgument) {
			t.Errorf("%s card: err = %v, want ErrInvalidArgument", name, err)
		}
	}
	var unknown interfaces.SessionID
	unknown[0] = 0xee
	if _, err := alice.Encrypt(ctx(t), &interfaces.EncryptRequest{Session: unknown, Body: []byte("x")}); !errors.Is(err, interfaces.ErrNotFound) {
		t.Errorf("unknown session: err = %v, want ErrNotFound", err)
	}
	sa := start(t, alice, bob)
	big := make([]byte, interfaces.MaxMessageBodyLen+1)
	if _, err := alice.Encrypt(ctx(t), &interfaces.EncryptRequest{Session: sa, Body: big}); !errors.Is(err, interfaces.ErrInvalidArgument) {
		t.Errorf("oversized body: err = %v, want ErrInvalidArgument", err)
	}
}

func restart(t *testing.T, u Users) {
	alice, bob := u.Open(t, "alice"), u.Open(t, "bob")
	idA := card(t, alice).Identity
	sa := start(t, alice, bob)
	old := enc(t, alice, sa, "before")
	sb := dec(t, bob, old, "before").Session
	dec(t, alice, enc(t, bob, sb, "reply"), "reply")
	inFlight := enc(t, alice, sa, "in flight")
	u.Close(t, alice)
	u.Close(t, bob)
	alice, bob = u.Open(t, "alice"), u.Open(t, "bob")
	if !bytes.Equal(card(t, alice).Identity, idA) {
		t.Fatal("alice's identity changed across a restart")
	}
	dec(t, bob, inFlight, "in flight")
	if _, err := bob.Decrypt(ctx(t), &interfaces.DecryptRequest{Ciphertext: old}); !errors.Is(err, interfaces.ErrReplay) {
		t.Errorf("a message read before the restart: err = %v, want ErrReplay", err)
	}
	dec(t, alice, enc(t, bob, sb, "after restart"), "after restart")
	dec(t, bob, enc(t, alice, sa, "and back"), "and back")
}

func ended(t *testing.T, u Users) {
	alice, bob := u.Open(t, "alice"), u.Open(t, "bob")
	sa := start(t, alice, bob)
	for range 2 {
		if _, err := alice.EndSession(ctx(t), &interfaces.EndSessionRequest{Session: sa}); err != nil {
			t.Fatalf("EndSession: %v", err)
		}
	}
	if _, err := alice.Encrypt(ctx(t), &interfaces.EncryptRequest{Session: sa, Body: []byte("x")}); !errors.Is(err, interfaces.ErrNotFound) {
		t.Errorf("Encrypt after EndSession: err = %v, want ErrNotFound", err)
	}
	if r, err := alice.StartSession(ctx(t), &interfaces.StartSessionRequest{PeerCard: card(t, bob).Card}); err != nil || r.Existing {
		t.Errorf("StartSession after EndSession = %+v, %v; want a new session", r, err)
	}
}
