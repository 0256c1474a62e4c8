package msgratchet

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
)

// One X25519 scalar multiplication: the unit docs/BENCHMARKS.md states
// the ratchet's costs in.
func BenchmarkX25519(b *testing.B) {
	k, _ := ecdh.X25519().GenerateKey(rand.Reader)
	p, _ := ecdh.X25519().GenerateKey(rand.Reader)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.ECDH(p.PublicKey()); err != nil {
			b.Fatal(err)
		}
	}
}

func benchPair(b *testing.B) (alice, bob *Ratchet, s interfaces.SessionID) {
	ctx := context.Background()
	open := func() *Ratchet {
		r, err := Open(ctx, memkv.New(), "ratchet")
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	alice, bob = open(), open()
	c, _ := bob.ContactCard(ctx, nil)
	st, err := alice.StartSession(ctx, &interfaces.StartSessionRequest{PeerCard: c.Card})
	if err != nil {
		b.Fatal(err)
	}
	return alice, bob, st.Session
}

// Per message of 1 KiB, state committed to an in-memory KV on every call
// (what the client's MessagingKV costs: the client's own save is not
// counted). "in chain": a message of an ongoing sending chain; "ratchet
// step": each message answers one from the peer, so each Decrypt makes a
// DH ratchet step (two X25519 and a key generation); "first": a session's
// first message (StartSession + Encrypt, then the responder's X3DH).
func BenchmarkMessage(b *testing.B) {
	ctx := context.Background()
	body := make([]byte, 1024)
	enc := func(b *testing.B, r *Ratchet, s interfaces.SessionID) []byte {
		ct, err := r.Encrypt(ctx, &interfaces.EncryptRequest{Session: s, Body: body})
		if err != nil {
			b.Fatal(err)
		}
		return ct.Ciphertext
	}
	dec := func(b *testing.B, r *Ratchet, ct []byte) interfaces.SessionID {
		resp, err := r.Decrypt(ctx, &interfaces.DecryptRequest{Ciphertext: ct})
		if err != nil {
			b.Fatal(err)
		}
		return resp.Session
	}
	b.Run("encrypt/in chain", func(b *testing.B) {
		alice, _, s := benchPair(b)
		b.ReportAllocs()
		for b.Loop() {
			enc(b, alice, s)
		}
	})
	b.Run("decrypt/in chain", func(b *testing.B) {
		alice, bob, s := benchPair(b)
		dec(b, bob, enc(b, alice, s))
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			ct := enc(b, alice, s)
			b.StartTimer()
			dec(b, bob, ct)
		}
	})
	b.Run("decrypt/ratchet step", func(b *testing.B) {
		alice, bob, sa := benchPair(b)
		sb := dec(b, bob, enc(b, alice, sa))
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			dec(b, alice, enc(b, bob, sb)) // bob answers: alice steps
			ct := enc(b, alice, sa)
			b.StartTimer()
			dec(b, bob, ct) // bob steps
		}
	})
	b.Run("encrypt/first", func(b *testing.B) {
		_, bob, _ := benchPair(b)
		c, _ := bob.ContactCard(ctx, nil)
		alice, err := Open(ctx, memkv.New(), "ratchet")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			st, err := alice.StartSession(ctx, &interfaces.StartSessionRequest{PeerCard: c.Card, Replace: true})
			if err != nil {
				b.Fatal(err)
			}
			enc(b, alice, st.Session)
		}
	})
	b.Run("decrypt/first", func(b *testing.B) {
		_, bob, _ := benchPair(b)
		c, _ := bob.ContactCard(ctx, nil)
		alice, err := Open(ctx, memkv.New(), "ratchet")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			st, err := alice.StartSession(ctx, &interfaces.StartSessionRequest{PeerCard: c.Card, Replace: true})
			if err != nil {
				b.Fatal(err)
			}
			ct := enc(b, alice, st.Session)
			b.StartTimer()
			dec(b, bob, ct)
		}
	})
}
