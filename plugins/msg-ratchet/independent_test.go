package msgratchet

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"testing"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
)

// No public Double Ratchet or X3DH test vectors fit this design (the
// search found Signal's in Objective-C and Java test code, none in a Go
// module's testdata, and the KDF labels here are Sotto's own), so this is
// the independent second decryption path: the recipient's side written
// again from docs/SPEC.md, "Messaging layer", with other implementations
// of the primitives (x/crypto's curve25519 and hkdf, not crypto/ecdh and
// crypto/hkdf), opening what the package sealed. It reads only the
// recipient's private keys from its state.
func TestAnIndependentReadingOfTheSpecOpensTheMessages(t *testing.T) {
	alice, bob := newUser(t, nil), newUser(t, nil)
	sa := alice.start(bob)
	bodies := []string{"first", "second", "third, after a gap"}
	var cts [][]byte
	for _, b := range bodies {
		cts = append(cts, alice.enc(sa, b))
	}

	x := func(priv, pub []byte) []byte {
		out, err := curve25519.X25519(priv, pub)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	hk := func(salt, ikm []byte, info string, n int) []byte {
		out := make([]byte, n)
		if _, err := io.ReadFull(hkdf.New(sha256.New, ikm, salt, []byte(info)), out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	mac := func(k []byte, b byte) []byte {
		m := hmac.New(sha256.New, k)
		m.Write([]byte{b})
		return m.Sum(nil)
	}
	bobSign := []byte(bob.r.id.Sign.Public().(ed25519.PublicKey))
	for i, ct := range cts {
		t.Run(fmt.Sprint("message ", i), func(t *testing.T) {
			// header: 0x02 | 0x01 (first messages) | sender Ed25519 key (32) |
			// sender X25519 identity (32) | its Ed25519 signature (64) |
			// ephemeral (32) | signed prekey ID (4) | one-time prekey ID (4) |
			// ratchet key (32) | PN (4) | N (4); then AES-256-GCM.
			if ct[0] != 2 || ct[1] != 1 {
				t.Fatalf("header starts %x, want 02 01 until the peer answers", ct[:2])
			}
			sender, ika, eka := ct[2:34], ct[34:66], ct[130:162]
			spkID, opkID := binary.BigEndian.Uint32(ct[162:]), binary.BigEndian.Uint32(ct[166:])
			ratchetKey := ct[170:202]
			n := binary.BigEndian.Uint32(ct[206:])
			header, sealed := ct[:210], ct[210:]
			if int(n) != i {
				t.Fatalf("N = %d, want %d", n, i)
			}
			var spkPriv, opkPriv []byte
			for _, s := range bob.r.pk.SPKs {
				if s.ID == spkID {
					spkPriv = s.Priv
				}
			}
			for _, o := range bob.r.pk.OPKs {
				if o.ID == opkID {
					opkPriv = o.Priv
				}
			}
			if spkPriv == nil || opkPriv == nil {
				t.Fatalf("bob holds no prekeys %d/%d", spkID, opkID)
			}
			// X3DH: SK = HKDF(salt 0^32, 0xFF^32 || DH1 || DH2 || DH3 || DH4).
			ikm := bytes.Repeat([]byte{0xff}, 32)
			ikm = append(ikm, x(spkPriv, ika)...)
			ikm = append(ikm, x(bob.r.id.DH, eka)...)
			ikm = append(ikm, x(spkPriv, eka)...)
			ikm = append(ikm, x(opkPriv, eka)...)
			sk := hk(make([]byte, 32), ikm, "sotto ratchet x3dh v2", 32)
			// The responder's first DH ratchet step: its signed prekey
			// against the sender's ratchet key, under the root key SK.
			rc := hk(sk, x(spkPriv, ratchetKey), "sotto ratchet root v2", 64)
			ck := rc[32:]
			var mk []byte
			for range n + 1 {
				mk, ck = mac(ck, 1), mac(ck, 2)
			}
			block, err := aes.NewCipher(mk)
			if err != nil {
				t.Fatal(err)
			}
			aead, err := cipher.NewGCM(block)
			if err != nil {
				t.Fatal(err)
			}
			ad := append(append(append([]byte{}, sender...), bobSign...), header...)
			body, err := aead.Open(nil, make([]byte, 12), sealed, ad)
			if err != nil {
				t.Fatalf("the spec's reading does not open message %d: %v", i, err)
			}
			if string(body) != bodies[i] {
				t.Fatalf("opened %q, want %q", body, bodies[i])
			}
		})
	}
	// And the package agrees with itself on the same bytes.
	for i, ct := range cts {
		bob.dec(ct, bodies[i])
	}
}
