package aez

import (
	"bytes"
	"crypto/aes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// shiftRows applies ShiftRows to every plane. With addRoundKey it makes the last
// round of full AES (which has no MixColumns) in TestBitslicedRoundsMakeAES128.
func (q *planes) shiftRows() {
	for i, x := range q {
		q[i] = shiftRow1(x)
	}
}

func (q *planes) addRoundKey(k *planes) {
	for i := range q {
		q[i] ^= k[i]
	}
}

func randBlock(r *rand.Rand) block {
	var b block
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestSBoxReferenceIsAES(t *testing.T) {
	// FIPS 197, figure 7: spot values of the S-box the table reference derives.
	for in, want := range map[byte]byte{0x00: 0x63, 0x01: 0x7c, 0x53: 0xed, 0xff: 0x16, 0x9a: 0xb8} {
		if sbox[in] != want {
			t.Fatalf("S(%02x) = %02x, want %02x", in, sbox[in], want)
		}
	}
}

func TestSubBytesCircuitIsTheSBoxOnEveryByte(t *testing.T) {
	// Every input value in every byte position of every block.
	for s := range 256 {
		var x [4]block
		for k := range 4 {
			for i := range blockSize {
				x[k][i] = byte(s + 16*k + i)
			}
		}
		var q planes
		q.load(&x)
		q.subBytes()
		var got [4]block
		q.store(&got)
		for k := range 4 {
			for i := range blockSize {
				if want := sbox[x[k][i]]; got[k][i] != want {
					t.Fatalf("block %d byte %d: S(%02x) = %02x, want %02x", k, i, x[k][i], got[k][i], want)
				}
			}
		}
	}
}

func TestPlanesLayout(t *testing.T) {
	// Bit 16r + 4c + k of plane i is bit i of byte 4c + r of block k.
	r := rand.New(rand.NewPCG(11, 12))
	var x [4]block
	for k := range x {
		x[k] = randBlock(r)
	}
	var q planes
	q.load(&x)
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
	var back [4]block
	q.store(&back)
	if back != x {
		t.Fatal("store(load(x)) != x")
	}
	for k := range x {
		want := planes{}
		var same [4]block
		for j := range same {
			same[j] = x[k]
		}
		want.load(&same)
		if got := roundKey(&x[k]); got != want {
			t.Fatalf("roundKey(block %d) differs from loading it in all four positions", k)
		}
	}
}

func TestBitslicedRoundMatchesTableRound(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for range 2000 {
		var x, want [4]block
		key := randBlock(r)
		var kw [4]uint32
		for w := range 4 {
			kw[w] = be32(key[4*w:])
		}
		for k := range x {
			x[k] = randBlock(r)
			storeState(&want[k], round(loadState(&x[k]), &kw))
		}
		rk := roundKey(&key)
		var q planes
		q.load(&x)
		q.aesenc(&rk)
		var got [4]block
		q.store(&got)
		if got != want {
			t.Fatalf("AESENC(%x, key %x) = %x, want %x", x, key, got, want)
		}
	}
}

func TestBitslicedAES4AndAES10MatchTable(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for trial := range 1000 {
		c, _ := testCipher(uint64(trial))
		var x, got4, got10 [4]block
		for k := range x {
			x[k] = randBlock(r)
		}
		got4, got10 = x, x
		c.aes4Bitsliced(&got4)
		c.aes10Bitsliced(&got10)
		rk := tableKeys(&c.keys)
		for k := range x {
			w4, w10 := x[k], x[k]
			aes4Table(&rk, &w4)
			aes10Table(&rk, &w10)
			if got4[k] != w4 || got10[k] != w10 {
				t.Fatalf("trial %d block %d: AES4 %x AES10 %x, want %x and %x", trial, k, got4[k], got10[k], w4, w10)
			}
		}
	}
}

// TestBitslicedRoundsMakeAES128 checks the rounds against crypto/aes with nothing
// from the table code: AES-128 is AddRoundKey(k0), nine AESENC rounds under k1…k9,
// and a last round without MixColumns under k10.
func TestBitslicedRoundsMakeAES128(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for range 300 {
		key := randBlock(r)
		rks := expandKey128Test(&key)
		ref, err := aes.NewCipher(key[:])
		if err != nil {
			t.Fatal(err)
		}
		var x, want [4]block
		for k := range x {
			x[k] = randBlock(r)
			ref.Encrypt(want[k][:], x[k][:])
		}
		var q planes
		q.load(&x)
		k0 := roundKey(&rks[0])
		q.addRoundKey(&k0)
		for i := 1; i < 10; i++ {
			ki := roundKey(&rks[i])
			q.aesenc(&ki)
		}
		k10 := roundKey(&rks[10])
		q.subBytes()
		q.shiftRows()
		q.addRoundKey(&k10)
		var got [4]block
		q.store(&got)
		if got != want {
			t.Fatalf("key %x: %x, want %x", key, got, want)
		}
	}
}

// expandKey128Test is the FIPS 197 key expansion for a 128-bit key, written plainly
// for this test (it looks up the S-box by key bytes: test use only).
func expandKey128Test(key *block) (rk [11]block) {
	rk[0] = *key
	rcon := byte(1)
	for i := 1; i <= 10; i++ {
		p := rk[i-1]
		temp := [4]byte{sbox[p[13]] ^ rcon, sbox[p[14]], sbox[p[15]], sbox[p[12]]}
		for w := range 4 {
			for b := range 4 {
				temp[b] ^= p[4*w+b]
				rk[i][4*w+b] = temp[b]
			}
		}
		rcon = xtime(rcon)
	}
	return rk
}

func TestBitslicedMatchesTableThroughAEZ(t *testing.T) {
	saved := useAsm
	useAsm = false
	defer func() { useAsm = saved }()
	r := rand.New(rand.NewPCG(19, 20))
	for n := 0; n <= 2700; n += 1 + n/16 {
		c, nonce := testCipher(uint64(n))
		m := randBytes(r, n)
		got := make([]byte, n)
		c.Encipher(got, m, nonce)
		want := make([]byte, n)
		withTableRounds(&c.keys, func() { c.Encipher(want, m, nonce) })
		if !bytes.Equal(got, want) {
			t.Fatalf("length %d: bitsliced and table Encipher differ", n)
		}
		key := bytes.Repeat([]byte{byte(n)}, 7)
		sealed := Encrypt(key, nonce[:], [][]byte{m[:n/2]}, 16, m)
		var ref []byte
		withTableRounds(&newCipher(key).keys, func() { ref = Encrypt(key, nonce[:], [][]byte{m[:n/2]}, 16, m) })
		if !bytes.Equal(sealed, ref) {
			t.Fatalf("length %d: bitsliced and table Encrypt with AD and tag differ", n)
		}
	}
}

// TestPortablePathIsTableFree pins where each build runs: off amd64 (js/wasm among
// them) the AES rounds are the bitsliced ones, and the only table-based AES in the
// package is the test reference, which no non-test build can reach.
func TestPortablePathIsTableFree(t *testing.T) {
	if runtime.GOARCH != "amd64" && useAsm {
		t.Fatalf("GOARCH=%s claims the AES-NI assembly", runtime.GOARCH)
	}
	if refRounds != nil {
		t.Fatal("a reference round hook is installed outside a test's scope")
	}
	t.Logf("GOOS=%s GOARCH=%s: AES rounds are %s", runtime.GOOS, runtime.GOARCH, map[bool]string{true: "AES-NI", false: "bitsliced"}[useAsm])
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("listing the package's files: %v (%d files)", err, len(files))
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, banned := range []string{"[256]", "sbox", "te0"} {
			if bytes.Contains(src, []byte(banned)) {
				t.Errorf("%s mentions %q: lookup tables belong only in aes_table_test.go", name, banned)
			}
		}
	}
}
