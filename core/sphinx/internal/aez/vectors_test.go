package aez

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/sottonet/sotto/internal/vectors"
)

// The published vectors live outside the repository, in the team's shared tree
// (../shared/vectors/aez); see internal/vectors for when a missing file skips.
func loadVectors(t *testing.T, name string, v any) {
	t.Helper()
	vectors.Load(t, vectors.Path(t, "aez/"+name), v)
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forBothPaths runs f with the AES-NI path (when the machine has it) and the portable,
// bitsliced one.
func forBothPaths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := useAsm
	defer func() { useAsm = saved }()
	if saved {
		t.Run("asm", f)
	}
	useAsm = false
	t.Run("bitsliced", f)
}

func TestVectorsEncryptDecrypt(t *testing.T) {
	var vecs []struct {
		K, Nonce string
		Data     []string
		Tau      int
		M, C     string
	}
	loadVectors(t, "aez_v5_vectors.json", &vecs)
	if len(vecs) != 1036 {
		t.Fatalf("got %d vectors, want 1036", len(vecs))
	}
	forBothPaths(t, func(t *testing.T) {
		sphinxCases := 0
		defer func() {
			if sphinxCases != 2 {
				t.Errorf("checked the Cipher API on %d vectors, want the 2 with Sphinx's parameters", sphinxCases)
			}
		}()
		for i, v := range vecs {
			k, n, m, c := unhex(t, v.K), unhex(t, v.Nonce), unhex(t, v.M), unhex(t, v.C)
			var ad [][]byte
			for _, a := range v.Data {
				ad = append(ad, unhex(t, a))
			}
			if got := Encrypt(k, n, ad, v.Tau, m); !bytes.Equal(got, c) {
				t.Errorf("vector %d (|k|=%d |ad|=%d tau=%d |m|=%d): Encrypt = %x, want %x", i, len(k), len(ad), v.Tau, len(m), got, c)
				continue
			}
			got, err := Decrypt(k, n, ad, v.Tau, c)
			if err != nil || !bytes.Equal(got, m) {
				t.Errorf("vector %d: Decrypt = %x, %v; want %x", i, got, err, m)
			}
			if len(k) == KeySize && len(n) == NonceSize && ad == nil && v.Tau == 0 {
				// Sphinx's exact use: check the Cipher API on it too, in place.
				sphinxCases++
				var c2 Cipher
				c2.SetKey((*[KeySize]byte)(k))
				buf := bytes.Clone(m)
				c2.Encipher(buf, buf, (*[NonceSize]byte)(n))
				if !bytes.Equal(buf, c) {
					t.Errorf("vector %d: Cipher.Encipher = %x, want %x", i, buf, c)
				}
				c2.Decipher(buf, buf, (*[NonceSize]byte)(n))
				if !bytes.Equal(buf, m) {
					t.Errorf("vector %d: Cipher.Decipher = %x, want %x", i, buf, m)
				}
			}
		}
	})
}

func TestVectorsExtract(t *testing.T) {
	var vecs []struct{ A, B string }
	loadVectors(t, "aez_v5_extract.json", &vecs)
	for i, v := range vecs {
		got := Extract(unhex(t, v.A))
		if !bytes.Equal(got[:], unhex(t, v.B)) {
			t.Errorf("vector %d: Extract(%s) = %x, want %s", i, v.A, got, v.B)
		}
	}
}

func TestVectorsHash(t *testing.T) {
	var vecs []struct {
		K    string
		Tau  int
		Data []string
		V    string
	}
	loadVectors(t, "aez_v5_hash.json", &vecs)
	forBothPaths(t, func(t *testing.T) {
		for i, v := range vecs {
			var c Cipher
			k := Extract(unhex(t, v.K))
			c.SetKey(&k)
			var ad [][]byte
			for _, a := range v.Data[1:] {
				ad = append(ad, unhex(t, a))
			}
			got := c.hash(v.Tau, unhex(t, v.Data[0]), ad)
			if !bytes.Equal(got[:], unhex(t, v.V)) {
				t.Errorf("vector %d: AEZ-hash = %x, want %s", i, got, v.V)
			}
		}
	})
}

func TestVectorsPRF(t *testing.T) {
	var vecs []struct {
		K, Delta string
		Tau      int
		R        string
	}
	loadVectors(t, "aez_v5_prf.json", &vecs)
	forBothPaths(t, func(t *testing.T) {
		for i, v := range vecs {
			var c Cipher
			k := Extract(unhex(t, v.K))
			c.SetKey(&k)
			var delta block
			copy(delta[:], unhex(t, v.Delta))
			got := make([]byte, v.Tau)
			c.prf(&delta, got)
			if !bytes.Equal(got, unhex(t, v.R)) {
				t.Errorf("vector %d: AEZ-prf = %x, want %s", i, got, v.R)
			}
		}
	})
}
