package aesctr

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"encoding/hex"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
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
	matchesCryptoCipherCTR(t, func(s *Stream, key *[32]byte) { s.SetKey(key) }, (*Stream).XORKeyStream)
}

// TestPortableMatchesCryptoCipherCTR runs the bitsliced path whatever this build
// picks, so that amd64 with AES-NI checks it too.
func TestPortableMatchesCryptoCipherCTR(t *testing.T) {
	matchesCryptoCipherCTR(t, func(s *Stream, key *[32]byte) { s.bs.SetKey(key) }, (*Stream).xorPortable)
}

func TestPortableCounterWraps(t *testing.T) {
	// The counter carries from the low 64 bits into the high ones inside one batch
	// of four blocks, and wraps around 2^128.
	for _, iv := range []string{"0000000000000000fffffffffffffffe", "fffffffffffffffffffffffffffffffd", "00000000000000000000000000000000"} {
		ivb, _ := hex.DecodeString(iv)
		var key [32]byte
		key[0] = 1
		blk, _ := aes.NewCipher(key[:])
		want := make([]byte, 200)
		cipher.NewCTR(blk, ivb).XORKeyStream(want, want)
		var s Stream
		s.bs.SetKey(&key)
		got := make([]byte, 200)
		s.xorPortable(got, got, (*[16]byte)(ivb))
		if !bytes.Equal(got, want) {
			t.Errorf("IV %s: differs from crypto/cipher", iv)
		}
	}
}

func matchesCryptoCipherCTR(t *testing.T, setKey func(*Stream, *[32]byte), xor func(*Stream, []byte, []byte, *[16]byte)) {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	var s Stream
	for i := range 400 {
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
		n := r.IntN(600)
		if i < 100 {
			n = i // every length of the first few batches of four blocks
		}
		msg := make([]byte, n)
		for j := range msg {
			msg[j] = byte(r.Uint32())
		}
		blk, _ := aes.NewCipher(key[:])
		want := make([]byte, len(msg))
		cipher.NewCTR(blk, iv[:]).XORKeyStream(want, msg)
		setKey(&s, &key)
		got := bytes.Clone(msg)
		xor(&s, got, got, &iv)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d (%d bytes, in place): differs from crypto/cipher", i, len(msg))
		}
		got = make([]byte, len(msg))
		xor(&s, got, msg, &iv)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d (%d bytes): differs from crypto/cipher", i, len(msg))
		}
	}
}

func TestNoAllocations(t *testing.T) {
	var s Stream
	var key [32]byte
	var iv [16]byte
	buf := make([]byte, 492)
	if n := testing.AllocsPerRun(20, func() { s.SetKey(&key); s.XORKeyStream(buf, buf, &iv) }); n != 0 {
		t.Fatalf("this build's path: %v allocations", n)
	}
	if n := testing.AllocsPerRun(20, func() { s.bs.SetKey(&key); s.xorPortable(buf, buf, &iv) }); n != 0 {
		t.Fatalf("bitsliced path: %v allocations", n)
	}
}

// headerStream is the keystream a node XORs into one header of the default
// geometry (routing information and one per-hop block).
const headerStream = 492

func BenchmarkHeaderStream(b *testing.B) {
	var s Stream
	var key [32]byte
	var iv [16]byte
	buf := make([]byte, headerStream)
	b.SetBytes(headerStream)
	b.ReportAllocs()
	for b.Loop() {
		s.SetKey(&key)
		s.XORKeyStream(buf, buf, &iv)
	}
}

// BenchmarkHeaderStreamInterleaved is one header's stream (a fresh key, then
// 492 bytes) on each implementation in turn within every iteration: this
// build's path, the bitsliced one, crypto/aes with crypto/cipher's CTR (what the
// portable path was, table-based off amd64 and arm64), and one X25519 (the unit
// of docs/BENCHMARKS.md). It reports each one's median and the ratios
// docs/BENCHMARKS.md quotes:
//
//	go test -run '^$' -bench HeaderStreamInterleaved ./core/sphinx/internal/aesctr/
func BenchmarkHeaderStreamInterleaved(b *testing.B) {
	var s Stream
	var key [32]byte
	var iv [16]byte
	buf := make([]byte, headerStream)
	priv, _ := ecdh.X25519().NewPrivateKey(make([]byte, 32))
	peer, _ := ecdh.X25519().NewPrivateKey(append(make([]byte, 31), 1))
	pub := peer.PublicKey()
	type run struct {
		name string
		f    func()
		d    []time.Duration
	}
	runs := []*run{
		{name: "X25519", f: func() { priv.ECDH(pub) }},
		{name: "bitsliced", f: func() { s.bs.SetKey(&key); s.xorPortable(buf, buf, &iv) }},
		{name: "crypto-aes", f: func() {
			blk, _ := aes.NewCipher(key[:])
			cipher.NewCTR(blk, iv[:]).XORKeyStream(buf, buf)
		}},
	}
	if useAESNI {
		runs = append(runs, &run{name: "aesni", f: func() { s.SetKey(&key); s.XORKeyStream(buf, buf, &iv) }})
	}
	for b.Loop() {
		for _, r := range runs {
			t0 := time.Now()
			r.f()
			r.d = append(r.d, time.Since(t0))
		}
	}
	med := make(map[string]float64)
	for _, r := range runs {
		slices.Sort(r.d)
		med[r.name] = float64(r.d[len(r.d)/2].Nanoseconds())
		b.ReportMetric(med[r.name], "ns/"+r.name)
	}
	b.ReportMetric(med["bitsliced"]/med["crypto-aes"], "bitsliced/crypto-aes")
	b.ReportMetric(med["bitsliced"]/med["X25519"], "bitsliced/X25519")
	b.ReportMetric(0, "ns/op") // the sum of all the runs: not a figure anyone quotes
}
