package aesbs

import (
	"crypto/aes"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// refSBox is the AES S-box derived from its definition (multiplicative inverse in
// GF(2^8), then the affine map), for tests only: it is a table indexed by data.
var refSBox = func() (s [256]byte) {
	mul := func(a, b byte) (p byte) {
		for ; b != 0; b >>= 1 {
			if b&1 != 0 {
				p ^= a
			}
			a = a<<1 ^ byte(int8(a)>>7)&0x1b
		}
		return p
	}
	rotl := func(x byte, n uint) byte { return x<<n | x>>(8-n) }
	for x := range 256 {
		inv := byte(0)
		for y := 1; y < 256; y++ {
			if mul(byte(x), byte(y)) == 1 {
				inv = byte(y)
			}
		}
		s[x] = inv ^ rotl(inv, 1) ^ rotl(inv, 2) ^ rotl(inv, 3) ^ rotl(inv, 4) ^ 0x63
	}
	return s
}()

func randBlock(r *rand.Rand) (b Block) {
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestReferenceSBoxIsAES(t *testing.T) {
	// FIPS 197, figure 7: spot values.
	for in, want := range map[byte]byte{0x00: 0x63, 0x01: 0x7c, 0x53: 0xed, 0xff: 0x16, 0x9a: 0xb8} {
		if refSBox[in] != want {
			t.Fatalf("S(%02x) = %02x, want %02x", in, refSBox[in], want)
		}
	}
}

func TestSubBytesCircuitIsTheSBoxOnEveryByte(t *testing.T) {
	// Every input value in every byte position of every block.
	for s := range 256 {
		var x [4]Block
		for k := range 4 {
			for i := range 16 {
				x[k][i] = byte(s + 16*k + i)
			}
		}
		var q Planes
		q.Load(&x)
		q.subBytes()
		var got [4]Block
		q.Store(&got)
		for k := range 4 {
			for i := range 16 {
				if want := refSBox[x[k][i]]; got[k][i] != want {
					t.Fatalf("block %d byte %d: S(%02x) = %02x, want %02x", k, i, x[k][i], got[k][i], want)
				}
			}
		}
	}
}

func TestPlanesLayout(t *testing.T) {
	// Bit 16r + 4c + k of plane i is bit i of byte 4c + r of block k.
	r := rand.New(rand.NewPCG(11, 12))
	var x [4]Block
	for k := range x {
		x[k] = randBlock(r)
	}
	var q Planes
	q.Load(&x)
	for i := range 8 {
		for k := range 4 {
			for row := range 4 {
				for c := range 4 {
					got := q[i] >> (16*row + 4*c + k) & 1
					want := uint64(x[k][4*c+row]>>i) & 1
					if got != want {
						t.Fatalf("plane %d, block %d, row %d, column %d: bit %d, want %d", i, k, row, c, got, want)
					}
				}
			}
		}
	}
	var back [4]Block
	q.Store(&back)
	if back != x {
		t.Fatal("Store(Load(x)) != x")
	}
	for k := range x {
		want := Planes{}
		same := [4]Block{x[k], x[k], x[k], x[k]}
		want.Load(&same)
		if got := RoundKey(&x[k]); got != want {
			t.Fatalf("RoundKey(block %d) differs from loading it in all four positions", k)
		}
	}
}

// expandKeyTest is the FIPS 197 key expansion written plainly for any key size
// (it looks up refSBox by key bytes: test use only).
func expandKeyTest(key []byte) []Block {
	nk := len(key) / 4
	nr := nk + 6
	w := make([][4]byte, 4*(nr+1))
	for i := range nk {
		copy(w[i][:], key[4*i:])
	}
	rcon := byte(1)
	for i := nk; i < len(w); i++ {
		t := w[i-1]
		if i%nk == 0 {
			t = [4]byte{refSBox[t[1]] ^ rcon, refSBox[t[2]], refSBox[t[3]], refSBox[t[0]]}
			rcon = rcon<<1 ^ byte(int8(rcon)>>7)&0x1b
		} else if nk > 6 && i%nk == 4 {
			t = [4]byte{refSBox[t[0]], refSBox[t[1]], refSBox[t[2]], refSBox[t[3]]}
		}
		for b := range 4 {
			w[i][b] = w[i-nk][b] ^ t[b]
		}
	}
	rk := make([]Block, nr+1)
	for i := range w {
		copy(rk[i/4][4*(i%4):], w[i][:])
	}
	return rk
}

func TestKeyExpansionFIPS197(t *testing.T) {
	// FIPS 197 appendix A.3: the AES-256 key expansion's first and last words.
	key, _ := hex.DecodeString("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
	var rk [15]Block
	expandKey256((*[32]byte)(key), &rk)
	for _, c := range []struct {
		i    int
		want uint32
	}{{8, 0x9ba35411}, {9, 0x8e6925af}, {12, 0xa8b09c1a}, {59, 0x706c631e}} {
		if got := binary.BigEndian.Uint32(rk[c.i/4][4*(c.i%4):]); got != c.want {
			t.Errorf("w[%d] = %08x, want %08x", c.i, got, c.want)
		}
	}
}

func TestKeyExpansionMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for range 500 {
		var key [32]byte
		for i := range key {
			key[i] = byte(r.Uint32())
		}
		var got [15]Block
		expandKey256(&key, &got)
		if want := expandKeyTest(key[:]); [15]Block(want) != got {
			t.Fatalf("key %x: round keys differ from the reference", key)
		}
	}
}

func TestAES256MatchesCryptoAES(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	var c AES256
	for range 1000 {
		var key [32]byte
		for i := range key {
			key[i] = byte(r.Uint32())
		}
		ref, err := aes.NewCipher(key[:])
		if err != nil {
			t.Fatal(err)
		}
		c.SetKey(&key)
		var x, want [4]Block
		for k := range x {
			x[k] = randBlock(r)
			ref.Encrypt(want[k][:], x[k][:])
		}
		c.Encrypt4(&x)
		if x != want {
			t.Fatalf("key %x: %x, want %x", key, x, want)
		}
	}
}

func TestAES256FIPS197(t *testing.T) {
	// FIPS 197 appendix C.3, in each of the four block positions.
	key, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	pt, _ := hex.DecodeString("00112233445566778899aabbccddeeff")
	var c AES256
	c.SetKey((*[32]byte)(key))
	x := [4]Block{Block(pt), Block(pt), Block(pt), Block(pt)}
	c.Encrypt4(&x)
	for k := range x {
		if got := hex.EncodeToString(x[k][:]); got != "8ea2b7ca516745bfeafc49904b496089" {
			t.Fatalf("block %d: %s", k, got)
		}
	}
}

// TestRoundsMakeAES128 checks Round and FinalRound under another key schedule:
// AES-128 is AddRoundKey(k0), nine rounds under k1…k9 and a last round under k10.
func TestRoundsMakeAES128(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for range 300 {
		key := randBlock(r)
		rks := expandKeyTest(key[:])
		ref, err := aes.NewCipher(key[:])
		if err != nil {
			t.Fatal(err)
		}
		var x, want [4]Block
		for k := range x {
			x[k] = randBlock(r)
			ref.Encrypt(want[k][:], x[k][:])
		}
		var q Planes
		q.Load(&x)
		k0 := RoundKey(&rks[0])
		q.AddRoundKey(&k0)
		for i := 1; i < 10; i++ {
			ki := RoundKey(&rks[i])
			q.Round(&ki)
		}
		k10 := RoundKey(&rks[10])
		q.FinalRound(&k10)
		q.Store(&x)
		if x != want {
			t.Fatalf("key %x: %x, want %x", key, x, want)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	var c AES256
	var key [32]byte
	var x [4]Block
	if n := testing.AllocsPerRun(20, func() { c.SetKey(&key); c.Encrypt4(&x) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// BenchmarkAES256 is the bitsliced AES-256 beside crypto/aes (table-based off
// amd64 and arm64, AES-NI on amd64) on four blocks, and the key setup.
func BenchmarkAES256(b *testing.B) {
	var key [32]byte
	b.Run("bitsliced/Encrypt4", func(b *testing.B) {
		var c AES256
		c.SetKey(&key)
		var x [4]Block
		b.SetBytes(64)
		for b.Loop() {
			c.Encrypt4(&x)
		}
	})
	b.Run("crypto-aes/Encrypt4", func(b *testing.B) {
		c, _ := aes.NewCipher(key[:])
		var x [4]Block
		b.SetBytes(64)
		for b.Loop() {
			for k := range x {
				c.Encrypt(x[k][:], x[k][:])
			}
		}
	})
	b.Run("bitsliced/SetKey", func(b *testing.B) {
		var c AES256
		b.ReportAllocs()
		for b.Loop() {
			c.SetKey(&key)
		}
	})
	b.Run("crypto-aes/NewCipher", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			aes.NewCipher(key[:])
		}
	})
}

func TestReplicateIsRoundKey(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	for range 100 {
		var x [4]Block
		for k := range x {
			x[k] = randBlock(r)
		}
		var q Planes
		q.Load(&x)
		for k := range x {
			if q.replicate(k) != RoundKey(&x[k]) {
				t.Fatalf("replicate(%d) differs from RoundKey", k)
			}
		}
	}
}

func TestSubWordIsTheSBox(t *testing.T) {
	for v := range 256 {
		w := uint32(v) | uint32(v^0x5a)<<8 | uint32(v^0xa5)<<16 | uint32(255-v)<<24
		want := uint32(refSBox[byte(w)]) | uint32(refSBox[byte(w>>8)])<<8 | uint32(refSBox[byte(w>>16)])<<16 | uint32(refSBox[byte(w>>24)])<<24
		if got := subWord(w); got != want {
			t.Fatalf("subWord(%08x) = %08x, want %08x", w, got, want)
		}
	}
}
