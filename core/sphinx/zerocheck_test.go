package sphinx

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

// The canonical and non-canonical encodings of Curve25519's low-order points
// (orders 1, 2, 4 and 8) that NewPublicKey accepts: each gives the all-zero
// shared secret, which the sender must refuse.
var lowOrderKeys = []string{
	"0100000000000000000000000000000000000000000000000000000000000000", // u = 1
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", // order 8
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p, i.e. u = 0
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p + 1, i.e. u = 1
}

// TestFastPathRefusesTheZeroSharedSecret drives the fast path's zero check
// (now crypto/subtle) with every low-order key at every hop position.
func TestFastPathRefusesTheZeroSharedSecret(t *testing.T) {
	r := testRand(31)
	nodes := newTestNodes(t, r, 3)
	for _, enc := range lowOrderKeys {
		lo, err := NewPublicKey(unhex(t, enc))
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if lo.ed == nil {
			t.Fatalf("%s has no Edwards form: the fast path would not see it", enc)
		}
		for hop := range len(nodes) {
			path := forwardPath(nodes, &Recipient{})
			path[hop].PublicKey = lo
			st := make([]hopState, len(path))
			var x [32]byte
			x[0] = byte(hop + 1)
			err := secretsFast(newMacer(), &x, path, st)
			if !errors.Is(err, ErrInvalidGroupElement) || !strings.Contains(err.Error(), "is zero") {
				t.Fatalf("key %s at hop %d: err = %v, want a zero shared secret refused", enc, hop, err)
			}
			if err := secretsSlow(newMacer(), &x, path, make([]hopState, len(path))); !errors.Is(err, ErrInvalidGroupElement) {
				t.Fatalf("key %s at hop %d: the ladder construction gives %v", enc, hop, err)
			}
		}
	}
	// An honest path still passes the check.
	if err := secretsFast(newMacer(), &[32]byte{1}, forwardPath(nodes, &Recipient{}), make([]hopState, len(nodes))); err != nil {
		t.Fatal(err)
	}
}

// TestZeroChecksUseSubtle keeps secret comparisons in constant time: no source
// file of the package compares an array with a zero literal (Go's == on arrays
// may stop at the first differing byte); use crypto/subtle.
func TestZeroChecksUseSubtle(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			be, ok := n.(*ast.BinaryExpr)
			if !ok || (be.Op != token.EQL && be.Op != token.NEQ) {
				return true
			}
			for _, side := range []ast.Expr{be.X, be.Y} {
				if cl, ok := side.(*ast.CompositeLit); ok && len(cl.Elts) == 0 {
					if _, isArray := cl.Type.(*ast.ArrayType); isArray {
						t.Errorf("%s: array compared with a zero literal; use crypto/subtle", fset.Position(be.Pos()))
					}
				}
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no source files found")
	}
}
