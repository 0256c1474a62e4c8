package token

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/cloudflare/circl/blindsign/blindrsa"

	"github.com/sottonet/sotto/internal/vectors"
)

// hexBytes decodes the vectors' hex strings ("0x…" or bare).
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	s = strings.TrimPrefix(s, "0x")
	if len(s)%2 == 1 {
		s = "0" + s
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

type rfc9474Vector struct {
	Name      string   `json:"name"`
	P         hexBytes `json:"p"`
	Q         hexBytes `json:"q"`
	N         hexBytes `json:"n"`
	E         hexBytes `json:"e"`
	D         hexBytes `json:"d"`
	Msg       hexBytes `json:"msg"`
	MsgPrefix hexBytes `json:"msg_prefix"`
	InputMsg  hexBytes `json:"input_msg"`
	Salt      hexBytes `json:"salt"`
	Inv       hexBytes `json:"inv"`
	Blinded   hexBytes `json:"blinded_msg"`
	BlindSig  hexBytes `json:"blind_sig"`
	Sig       hexBytes `json:"sig"`
}

// scripted is a random source that returns the vector's randomness in the
// order circl draws it: the message prefix (Prepare), then the PSS salt
// and the blinding factor r (Blind).
type scripted struct{ r io.Reader }

func (s scripted) Read(p []byte) (int, error) { return io.ReadFull(s.r, p) }

// The RFC 9474 known-answer tests of RSABSSA-SHA384-PSS-Randomized,
// through the same circl calls this package makes (Prepare, Blind,
// BlindSign, Finalize, Verify), read from circl's published test data in
// the module cache.
func TestRFC9474KnownAnswers(t *testing.T) {
	name := vectors.ModuleFile(t, "github.com/cloudflare/circl", "blindsign/blindrsa/testdata/test_vectors_rfc9474.json.gz")
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var all []rfc9474Vector
	if err := json.NewDecoder(zr).Decode(&all); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range all {
		if v.Name != "RSABSSA-SHA384-PSS-Randomized" {
			continue
		}
		n++
		t.Run(v.Name, func(t *testing.T) {
			sk := &rsa.PrivateKey{
				PublicKey: rsa.PublicKey{N: new(big.Int).SetBytes(v.N), E: int(new(big.Int).SetBytes(v.E).Int64())},
				D:         new(big.Int).SetBytes(v.D),
				Primes:    []*big.Int{new(big.Int).SetBytes(v.P), new(big.Int).SetBytes(v.Q)},
			}
			sk.Precompute()
			if err := sk.Validate(); err != nil {
				t.Fatal(err)
			}
			c, err := blindrsa.NewClient(Variant, &sk.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			// r is the inverse of the vector's inv.
			r := new(big.Int).ModInverse(new(big.Int).SetBytes(v.Inv), sk.N)
			rb := make([]byte, sk.Size())
			r.FillBytes(rb)
			rnd := scripted{io.MultiReader(bytes.NewReader(v.MsgPrefix), bytes.NewReader(v.Salt), bytes.NewReader(rb))}
			prepared, err := c.Prepare(rnd, v.Msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(prepared, v.InputMsg) {
				t.Fatalf("prepared message %x, want %x", prepared, v.InputMsg)
			}
			blinded, state, err := c.Blind(rnd, prepared)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(blinded, v.Blinded) {
				t.Fatalf("blinded message differs from the RFC's")
			}
			bs, err := BlindSign(sk, blinded)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(bs, v.BlindSig) {
				t.Fatalf("blind signature differs from the RFC's")
			}
			sig, err := c.Finalize(state, bs)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sig, v.Sig) {
				t.Fatalf("signature differs from the RFC's")
			}
			// The gateway's verifier (crypto/rsa) and circl's agree on
			// the RFC's signature and on a corrupted one.
			ver, _ := blindrsa.NewVerifier(Variant, &sk.PublicKey)
			bad := bytes.Clone(v.Sig)
			bad[len(bad)-1] ^= 1
			badMsg := bytes.Clone(v.InputMsg)
			badMsg[0] ^= 1
			for _, vf := range []struct {
				name   string
				verify func(msg, sig []byte) error
			}{
				{"VerifyPrepared", func(msg, sig []byte) error { return VerifyPrepared(&sk.PublicKey, msg, sig) }},
				{"circl", ver.Verify},
			} {
				if err := vf.verify(v.InputMsg, v.Sig); err != nil {
					t.Fatalf("%s: the RFC's signature does not verify: %v", vf.name, err)
				}
				if vf.verify(v.InputMsg, bad) == nil {
					t.Fatalf("%s: a signature with one bit flipped verifies", vf.name)
				}
				if vf.verify(badMsg, v.Sig) == nil {
					t.Fatalf("%s: the signature verifies another message", vf.name)
				}
			}
		})
	}
	if n == 0 {
		t.Fatal("no RSABSSA-SHA384-PSS-Randomized vector in the file")
	}
}

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

// key is one issuer key shared by the tests (generating is slow).
func key(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, KeyBits)
		if err != nil {
			t.Fatal(err)
		}
		testKey = k
	})
	return testKey
}

func params(t testing.TB) *Params {
	return &Params{Policy: PolicyFree, PacketsPerToken: 100, MaxBatch: 16, FreeQuota: 8, KeyPeriod: 7, ValidFrom: 7, ValidUntil: 9, PublicKey: &key(t).PublicKey}
}

func TestATokenRoundTripsAndVerifiesOnlyUnderItsKey(t *testing.T) {
	p := params(t)
	pb, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(pb) > 1024 {
		t.Fatalf("params of %d bytes do not fit a descriptor", len(pb))
	}
	p2, err := ParseParams(pb)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := Blind(rand.Reader, p2)
	if err != nil {
		t.Fatal(err)
	}
	req := (&IssueRequest{KeyPeriod: 7, Blinded: [][]byte{pt.Blinded}}).Marshal()
	r, err := ParseIssueRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := BlindSign(key(t), r.Blinded[0])
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pt.Finalize(bs)
	if err != nil {
		t.Fatal(err)
	}
	enc := tok.Marshal()
	if len(enc) != TokenLen {
		t.Fatalf("token of %d bytes, want %d", len(enc), TokenLen)
	}
	back, err := ParseToken(enc)
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(&key(t).PublicKey); err != nil {
		t.Fatal(err)
	}
	// The same token claiming another key period does not verify.
	back.KeyPeriod++
	if err := back.Verify(&key(t).PublicKey); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a token moved to another key period: err = %v, want ErrBadSignature", err)
	}
	// A blind signature by another key is refused by Finalize.
	other, _ := rsa.GenerateKey(rand.Reader, KeyBits)
	bs2, _ := BlindSign(other, pt.Blinded)
	if _, err := pt.Finalize(bs2); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Finalize of another key's signature: err = %v, want ErrBadSignature", err)
	}
}

func TestVouchersVerifyOnlyUnderAnOperatorKey(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	pub2, _, _ := ed25519.GenerateKey(rand.Reader)
	b := SignVoucher(priv, [16]byte{1}, 10, 99)
	v, err := ParseVoucher(b)
	if err != nil {
		t.Fatal(err)
	}
	if v.Tokens != 10 || v.NotAfter != 99 || v.Verify([]ed25519.PublicKey{pub2, pub}) != nil {
		t.Fatalf("voucher %+v does not verify", v)
	}
	if v.Verify([]ed25519.PublicKey{pub2}) == nil {
		t.Fatal("a voucher verifies under a key that did not sign it")
	}
	v.Tokens++
	if v.Verify([]ed25519.PublicKey{pub}) == nil {
		t.Fatal("a voucher with its token count raised verifies")
	}
}

func FuzzParsers(f *testing.F) {
	p := params(f)
	pb, _ := p.Marshal()
	f.Add(pb)
	f.Add(make([]byte, TokenLen))
	f.Add((&IssueRequest{KeyPeriod: 1, Blinded: [][]byte{make([]byte, SigLen)}}).Marshal())
	f.Add(make([]byte, VoucherLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseParams(b)
		if tok, err := ParseToken(b); err == nil && !bytes.Equal(tok.Marshal(), b) {
			t.Fatal("a token does not re-encode to its bytes")
		}
		if r, err := ParseIssueRequest(b); err == nil && !bytes.Equal(r.Marshal(), b) {
			t.Fatal("an issue request does not re-encode to its bytes")
		}
		_, _ = ParseVoucher(b)
		_, _ = ParseIssueResponse(b, 2)
	})
}
