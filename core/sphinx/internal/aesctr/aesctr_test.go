package aesctr

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// FIPS 197 appendix C.3: AES-256 on one block (CTR with that block as IV
// and a zero plaintext gives the ciphertext as keystream).
func TestFIPS197(t *testing.T) {
	key, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	iv, _ := hex.DecodeString("00112233445566778899aabbccddeeff")
	var s Stream
	s.SetKey((*[32]byte)(key))
	out := make([]byte, 16)
	s.XORKeyStream(out, out, (*[16]byte)(iv))
	if got := hex.EncodeToString(out); got != "8ea2b7ca516745bfeafc49904b496089" {
		t.Fatalf("got %s", got)
	}
}

func TestMatchesCryptoCipherCTR(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var s Stream
	for i := range 300 {
		var key [32]byte
		var iv [16]byte
		for j := range key {
			key[j] = byte(r.Uint32())
		}
		for j := range iv {
			iv[j] = byte(r.Uint32())
		}
		if i%3 == 0 { // exercise the 64-bit carry
			for j := 8; j < 16; j++ {
				iv[j] = 0xff
			}
		}
		msg := make([]byte, r.IntN(600))
		for j := range msg {
			msg[j] = byte(r.Uint32())
		}
		blk, _ := aes.NewCipher(key[:])
		want := make([]byte, len(msg))
		cipher.NewCTR(blk, iv[:]).XORKeyStream(want, msg)
		s.SetKey(&key)
		got := bytes.Clone(msg)
		s.XORKeyStream(got, got, &iv)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d (%d bytes): differs from crypto/cipher", i, len(msg))
		}
	}
}

func TestNoAllocations(t *testing.T) {
	if !useAESNI {
		t.Skip("fallback path: crypto/aes allocates")
	}
	var s Stream
	var key [32]byte
	var iv [16]byte
	buf := make([]byte, 492)
	if n := testing.AllocsPerRun(20, func() { s.SetKey(&key); s.XORKeyStream(buf, buf, &iv) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func BenchmarkHeaderStream(b *testing.B) {
	var s Stream
	var key [32]byte
	var iv [16]byte
	buf := make([]byte, 492)
	b.SetBytes(492)
	b.ReportAllocs()
	for b.Loop() {
		s.SetKey(&key)
		s.XORKeyStream(buf, buf, &iv)
	}
}
