package sphinx

import (
	"bytes"
	"crypto/ecdh"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

func mustHex32(t testing.TB, s string) *[32]byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return (*[32]byte)(b)
}

// RFC 7748 §5.2 known answers.
func TestX25519RFC7748Vectors(t *testing.T) {
	tests := []struct{ name, scalar, u, out string }{
		{"first vector", "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
			"e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
			"c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
		{"second vector with the top bit of u set", "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
			"e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
			"95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out [32]byte
			if !x25519(&out, mustHex32(t, tt.scalar), mustHex32(t, tt.u)) {
				t.Fatal("x25519 reported a zero output")
			}
			if got := hex.EncodeToString(out[:]); got != tt.out {
				t.Errorf("got %s, want %s", got, tt.out)
			}
		})
	}
}

// RFC 7748 §5.2 iteration test, 1 and 1000 iterations.
func TestX25519RFC7748Iterations(t *testing.T) {
	k, u := basePoint, basePoint
	var out [32]byte
	for i := 1; i <= 1000; i++ {
		x25519(&out, &k, &u)
		u, k = k, out
		switch i {
		case 1:
			if got := hex.EncodeToString(k[:]); got != "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079" {
				t.Errorf("after 1 iteration: %s", got)
			}
		case 1000:
			if got := hex.EncodeToString(k[:]); got != "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51" {
				t.Errorf("after 1000 iterations: %s", got)
			}
		}
	}
}

func TestX25519MatchesCryptoECDH(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		var sk, pk [32]byte
		for j := range 32 {
			sk[j], pk[j] = byte(r.Uint32()), byte(r.Uint32())
		}
		if i%2 == 0 { // a real public key half of the time
			x25519(&pk, &pk, &basePoint)
		}
		priv, err := ecdh.X25519().NewPrivateKey(sk[:])
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ecdh.X25519().NewPublicKey(pk[:])
		if err != nil {
			t.Fatal(err)
		}
		want, wantErr := priv.ECDH(pub)
		var got [32]byte
		ok := x25519(&got, &sk, &pk)
		if (wantErr == nil) != ok || (ok && !bytes.Equal(got[:], want)) {
			t.Fatalf("input %d: got %x ok=%v, crypto/ecdh %x err=%v", i, got, ok, want, wantErr)
		}
	}
}

func TestX25519RejectsLowOrderPoints(t *testing.T) {
	lowOrder := []string{
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
		"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	}
	k := mustHex32(t, "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
	for _, h := range lowOrder {
		var out [32]byte
		if x25519(&out, k, mustHex32(t, h)) {
			t.Errorf("u=%s: accepted, output %x", h, out)
		}
	}
}

func TestX25519Allocations(t *testing.T) {
	var out [32]byte
	k := mustHex32(t, "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
	if n := testing.AllocsPerRun(10, func() { x25519(&out, k, &basePoint) }); n != 0 {
		t.Errorf("x25519 allocates %v times", n)
	}
}
