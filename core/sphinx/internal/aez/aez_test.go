package aez

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func testCipher(seed uint64) (*Cipher, *[NonceSize]byte) {
	r := rand.New(rand.NewPCG(seed, 1))
	var k [KeySize]byte
	var n [NonceSize]byte
	for i := range k {
		k[i] = byte(r.Uint32())
	}
	for i := range n {
		n[i] = byte(r.Uint32())
	}
	c := new(Cipher)
	c.SetKey(&k)
	c.bitsliceKeys() // so that tests may switch paths after keying
	return c, &n
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestEncipherMatchesEncrypt(t *testing.T) {
	// Cipher.Encipher is exactly Encrypt with tau = 0 and a nil AD vector.
	r := rand.New(rand.NewPCG(7, 7))
	for n := 0; n <= 600; n++ {
		c, nonce := testCipher(uint64(n))
		var key [KeySize]byte
		copy(key[0:16], c.keys[0][:])
		copy(key[16:32], c.keys[1][:])
		copy(key[32:48], c.keys[2][:])
		m := randBytes(r, n)
		got := make([]byte, n)
		c.Encipher(got, m, nonce)
		if want := Encrypt(key[:], nonce[:], nil, 0, m); !bytes.Equal(got, want) {
			t.Fatalf("length %d: Encipher and Encrypt(tau=0, ad=nil) differ", n)
		}
	}
}

func TestAsmMatchesPortable(t *testing.T) {
	if !useAsm {
		t.Skip("no AES-NI assembly on this platform or build")
	}
	defer func() { useAsm = true }()
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 700; n++ {
		for trial := range 3 {
			c, nonce := testCipher(uint64(1000*n + trial))
			m := randBytes(r, n)
			var outs [2][2][]byte // [asm/portable][separate/in place]
			for p, asm := range []bool{true, false} {
				useAsm = asm
				sep := make([]byte, n)
				c.Encipher(sep, m, nonce)
				inPlace := bytes.Clone(m)
				c.Encipher(inPlace, inPlace, nonce)
				outs[p] = [2][]byte{sep, inPlace}
				dec := make([]byte, n)
				c.Decipher(dec, sep, nonce)
				if !bytes.Equal(dec, m) {
					t.Fatalf("length %d asm=%v: Decipher(Encipher(m)) != m", n, asm)
				}
			}
			useAsm = true
			if !bytes.Equal(outs[0][0], outs[1][0]) || !bytes.Equal(outs[0][1], outs[1][1]) || !bytes.Equal(outs[0][0], outs[0][1]) {
				t.Fatalf("length %d: assembly, portable, in-place and separate outputs differ", n)
			}
		}
	}
}

func TestRoundTripAllLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	forBothPaths(t, func(t *testing.T) {
		for n := 0; n <= 2100; n++ {
			if n > 600 && n%37 != 0 && n != 2048 {
				continue
			}
			c, nonce := testCipher(uint64(n))
			m := randBytes(r, n)
			ct := make([]byte, n)
			c.Encipher(ct, m, nonce)
			if n >= 4 && bytes.Equal(ct, m) {
				t.Fatalf("length %d: ciphertext equals plaintext", n)
			}
			buf := bytes.Clone(ct)
			c.Decipher(buf, buf, nonce)
			if !bytes.Equal(buf, m) {
				t.Fatalf("length %d: in-place Decipher(Encipher(m)) != m", n)
			}
		}
	})
}

// TestWideBlock checks the SPRP property Sphinx relies on: flipping any one input bit
// (message, nonce or key) changes the whole output, not a block of it.
func TestWideBlock(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	forBothPaths(t, func(t *testing.T) {
		for _, n := range []int{32, 33, 47, 48, 63, 64, 100, 135, 709, 2048} {
			c, nonce := testCipher(uint64(n))
			m := randBytes(r, n)
			base := make([]byte, n)
			c.Encipher(base, m, nonce)
			for bit := 0; bit < 8*n; bit += 1 + 8*n/97 {
				m2 := bytes.Clone(m)
				m2[bit/8] ^= 1 << (bit % 8)
				out := make([]byte, n)
				c.Encipher(out, m2, nonce)
				if changed := countChanged(base, out); 2*changed < n {
					t.Fatalf("length %d, bit %d: only %d of %d output bytes changed", n, bit, changed, n)
				}
				// Deciphering a tampered ciphertext must randomize the whole plaintext too.
				c.Decipher(out, out, nonce)
				if !bytes.Equal(out, m2) {
					t.Fatalf("length %d: round trip after flip failed", n)
				}
				ct2 := bytes.Clone(base)
				ct2[bit/8] ^= 1 << (bit % 8)
				c.Decipher(ct2, ct2, nonce)
				if changed := countChanged(m, ct2); 2*changed < n {
					t.Fatalf("length %d, ciphertext bit %d: only %d of %d plaintext bytes changed", n, bit, changed, n)
				}
			}
			nonce2 := *nonce
			nonce2[15] ^= 1
			out := make([]byte, n)
			c.Encipher(out, m, &nonce2)
			if changed := countChanged(base, out); 2*changed < n {
				t.Fatalf("length %d: nonce flip changed only %d of %d bytes", n, changed, n)
			}
		}
	})
}

func countChanged(a, b []byte) int {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

func TestDecryptRejectsForgery(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	nonce := bytes.Repeat([]byte{9}, NonceSize)
	ad := [][]byte{[]byte("header")}
	for _, n := range []int{0, 1, 15, 16, 31, 32, 100} {
		m := bytes.Repeat([]byte{0xaa}, n)
		c := Encrypt(key, nonce, ad, 16, m)
		if got, err := Decrypt(key, nonce, ad, 16, c); err != nil || !bytes.Equal(got, m) {
			t.Fatalf("length %d: Decrypt = %x, %v", n, got, err)
		}
		for i := range c {
			bad := bytes.Clone(c)
			bad[i] ^= 0x10
			if _, err := Decrypt(key, nonce, ad, 16, bad); err != ErrAuth {
				t.Fatalf("length %d: byte %d flipped: err = %v, want ErrAuth", n, i, err)
			}
		}
		if _, err := Decrypt(key, nonce, nil, 16, c); err != ErrAuth {
			t.Fatalf("length %d: wrong AD accepted", n)
		}
		if _, err := Decrypt(key, nonce, [][]byte{ad[0], {}}, 16, c); err != ErrAuth {
			t.Fatalf("length %d: extra empty AD element accepted", n)
		}
	}
	if _, err := Decrypt(key, nonce, nil, 16, make([]byte, 15)); err != ErrAuth {
		t.Fatalf("short ciphertext: err = %v, want ErrAuth", err)
	}
}

func TestZeroAllocations(t *testing.T) {
	var key [KeySize]byte
	var nonce [NonceSize]byte
	buf := make([]byte, 2048)
	var c Cipher
	forBothPaths(t, func(t *testing.T) {
		allocs := testing.AllocsPerRun(50, func() {
			key[0]++
			c.SetKey(&key)
			c.Encipher(buf, buf, &nonce)
			c.Decipher(buf, buf, &nonce)
			c.Encipher(buf[:20], buf[:20], &nonce)
			c.Decipher(buf[:20], buf[:20], &nonce)
		})
		if allocs != 0 {
			t.Fatalf("SetKey+Encipher+Decipher allocated %v times per run, want 0", allocs)
		}
	})
}

func TestReset(t *testing.T) {
	c, _ := testCipher(9)
	c.Reset()
	if *c != (Cipher{}) {
		t.Fatal("Reset left key material")
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add(make([]byte, KeySize), make([]byte, NonceSize), []byte{})
	f.Add(bytes.Repeat([]byte{1}, KeySize), bytes.Repeat([]byte{2}, NonceSize), []byte("x"))
	f.Add(bytes.Repeat([]byte{3}, KeySize), bytes.Repeat([]byte{4}, NonceSize), bytes.Repeat([]byte{5}, 135))
	f.Fuzz(func(t *testing.T, keyIn, nonceIn, msg []byte) {
		var key [KeySize]byte
		var nonce [NonceSize]byte
		copy(key[:], keyIn)
		copy(nonce[:], nonceIn)
		var c Cipher
		c.SetKey(&key)
		ct := make([]byte, len(msg))
		c.Encipher(ct, msg, &nonce)
		if want := Encrypt(key[:], nonce[:], nil, 0, msg); !bytes.Equal(ct, want) {
			t.Fatal("Encipher differs from Encrypt(tau=0, ad=nil)")
		}
		pt := bytes.Clone(ct)
		c.Decipher(pt, pt, &nonce)
		if !bytes.Equal(pt, msg) {
			t.Fatal("Decipher(Encipher(m)) != m")
		}
		// The general API with an arbitrary key length and a tag.
		sealed := Encrypt(keyIn, nonceIn, [][]byte{msg}, 16, msg)
		opened, err := Decrypt(keyIn, nonceIn, [][]byte{msg}, 16, sealed)
		if err != nil || !bytes.Equal(opened, msg) {
			t.Fatalf("Decrypt(Encrypt) = %x, %v", opened, err)
		}
	})
}
