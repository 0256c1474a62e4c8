package pkistatic

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/pkitest"
)

func operatorKey(seed string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(seed))
	return ed25519.NewKeyFromSeed(s[:])
}

func testDoc(t testing.TB, e uint64, n int) *interfaces.Document {
	t.Helper()
	var nodes []*interfaces.SignedDescriptor
	for i := range n {
		nodes = append(nodes, pkitest.NewDescriptor(t, "testnet", e, fmt.Sprint("static ", i), false))
	}
	doc, err := interfaces.NewDocument("testnet", e, interfaces.NetworkParams{
		Hops: 3, PayloadLen: 2048, Layers: 3, Mu: 1, LambdaP: 1, LambdaL: 1, LambdaD: 1, LambdaM: 1, EpochPeriod: time.Minute,
	}, nodes)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func writeDoc(t testing.TB, dir string, doc *interfaces.Document, key ed25519.PrivateKey) {
	t.Helper()
	b, err := SignDocument(doc, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("epoch-%d.sdoc", doc.Epoch)), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func openStatic(t testing.TB, dir string, key ed25519.PrivateKey) *PKI {
	t.Helper()
	p, err := Open(Config{OperatorKey: hex.EncodeToString(key.Public().(ed25519.PublicKey)), Dir: dir, Network: "testnet"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func harness(t *testing.T, wrap func(testing.TB, interfaces.PKI) interfaces.PKI) *pkitest.Harness {
	dir, key := t.TempDir(), operatorKey("operator")
	doc := testDoc(t, 7, 4)
	writeDoc(t, dir, doc, key)
	return &pkitest.Harness{PKI: wrap(t, openStatic(t, dir, key)), Network: "testnet", Epoch: 7, Known: doc.Nodes}
}

func TestConformanceInProcess(t *testing.T) {
	pkitest.Run(t, func(t *testing.T) *pkitest.Harness {
		return harness(t, func(_ testing.TB, p interfaces.PKI) interfaces.PKI { return p })
	})
}

func TestConformanceOverGRPC(t *testing.T) {
	pkitest.Run(t, func(t *testing.T) *pkitest.Harness { return harness(t, pkitest.OverGRPC) })
}

func TestFilesNotSignedByTheOperatorAreRefused(t *testing.T) {
	dir, key := t.TempDir(), operatorKey("operator")
	writeDoc(t, dir, testDoc(t, 1, 2), key)
	writeDoc(t, dir, testDoc(t, 2, 2), operatorKey("impostor"))
	good, _ := SignDocument(testDoc(t, 3, 2), key)
	good[len(good)/2] ^= 1
	os.WriteFile(filepath.Join(dir, "epoch-3.sdoc"), good, 0o644)
	os.WriteFile(filepath.Join(dir, "junk.sdoc"), []byte{0, 0}, 0o644)
	p := openStatic(t, dir, key)
	tests := []struct {
		name  string
		epoch uint64
		ok    bool
	}{
		{"the operator's document is served", 1, true},
		{"an impostor's document is not", 2, false},
		{"a tampered document is not", 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Document(t.Context(), &interfaces.DocumentRequest{Epoch: tt.epoch})
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, interfaces.ErrNotFound)) {
				t.Fatalf("error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	errs := p.LoadErrors()
	if !errors.Is(errs["epoch-2.sdoc"], ErrOperatorSignature) || errs["junk.sdoc"] == nil || errs["epoch-3.sdoc"] == nil {
		t.Fatalf("load errors: %v", errs)
	}
}

func TestNewEpochFilesArePickedUp(t *testing.T) {
	dir, key := t.TempDir(), operatorKey("operator")
	p := openStatic(t, dir, key)
	if _, err := p.Document(context.Background(), &interfaces.DocumentRequest{Epoch: 9}); !errors.Is(err, interfaces.ErrNotFound) {
		t.Fatalf("before the file: %v", err)
	}
	doc := testDoc(t, 9, 3)
	writeDoc(t, dir, doc, key)
	r, err := p.Document(context.Background(), &interfaces.DocumentRequest{Epoch: 9})
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := doc.Hash(); r.Hash != want {
		t.Fatal("served a different document")
	}
}

func TestConfigIsValidated(t *testing.T) {
	tests := []struct{ name, raw string }{
		{"not JSON", `{`},
		{"a short operator key", `{"operator_key":"abcd","dir":"/x","network":"n"}`},
		{"no dir", `{"operator_key":"` + hex.EncodeToString(make([]byte, 32)) + `","network":"n"}`},
		{"no network", `{"operator_key":"` + hex.EncodeToString(make([]byte, 32)) + `","dir":"/x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if _, err := ParseConfig([]byte(tt.raw)); !errors.Is(err, interfaces.ErrInvalidArgument) {
				t.Fatalf("error = %v", err)
			}
		})
	}
}

func FuzzParseSignedDocument(f *testing.F) {
	key := operatorKey("operator")
	good, err := SignDocument(testDoc(f, 1, 2), key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	pub := key.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := ParseSignedDocument(b, pub)
		if err == nil && doc.Validate() != nil {
			t.Fatal("accepted an invalid document")
		}
	})
}
