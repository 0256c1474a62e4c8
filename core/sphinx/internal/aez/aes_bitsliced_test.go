package aez

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sottonet/sotto/core/sphinx/internal/aesbs"
)

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
		rk := aesbs.RoundKey(&key)
		var q aesbs.Planes
		q.Load(&x)
		q.Round(&rk)
		var got [4]block
		q.Store(&got)
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
// them) the AES rounds are the bitsliced ones. Then it reads the non-test files of
// this package and of the two that share its bitsliced AES (internal/aesbs, and
// internal/aesctr, the header's AES-256-CTR), for every build (build tags are not
// applied), and fails if one declares a lookup table that is indexed at run time,
// or imports crypto/aes or crypto/cipher (Go's portable AES is table-based). The
// only table-based AES left is the test reference (aes_table_test.go), which no
// non-test build can reach.
func TestPortablePathIsTableFree(t *testing.T) {
	if runtime.GOARCH != "amd64" && useAsm {
		t.Fatalf("GOARCH=%s claims the AES-NI assembly", runtime.GOARCH)
	}
	if refRounds != nil {
		t.Fatal("a reference round hook is installed outside a test's scope")
	}
	t.Logf("GOOS=%s GOARCH=%s: AES rounds are %s", runtime.GOOS, runtime.GOARCH, map[bool]string{true: "AES-NI", false: "bitsliced"}[useAsm])
	pkgs := map[string][]*ast.File{}
	fset := token.NewFileSet()
	for _, dir := range []string{".", "../aesbs", "../aesctr"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("listing %s: %v (%d files)", dir, err, len(files))
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
					t.Errorf("%s mentions %q: lookup tables belong only in tests", name, banned)
				}
			}
			f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			pkgs[dir] = append(pkgs[dir], f)
		}
	}
	for dir, files := range pkgs {
		for _, p := range runtimeIndexedTables(fset, files) {
			t.Errorf("%s: %s", dir, p)
		}
	}
}

func TestTableCheckFindsTables(t *testing.T) {
	// The check above, on sources that have what it looks for.
	for _, c := range []struct{ name, src string }{
		{"an S-box array indexed by data", "package p\nvar s = [4]byte{1, 2, 3, 4}\nfunc f(x byte) byte { return s[x&3] }"},
		{"a table of a named array type", "package p\ntype tab [4]uint32\nvar t0 tab\nfunc f(x int) uint32 { return t0[x] }"},
		{"a table built by a function", "package p\nvar t0 = func() (t [4]uint32) { return }()\nfunc f(x int) uint32 { return t0[x] }"},
		{"a slice table", "package p\nvar t0 = []uint16{1, 2}\nfunc f(x int) uint16 { return t0[x%2] }"},
		{"a map", "package p\nvar m = map[byte]byte{}\nfunc f(x byte) byte { return m[x] }"},
		{"a string indexed by data", "package p\nfunc f(x byte) byte { return \"0123456789abcdef\"[x&15] }"},
		{"a local table literal", "package p\nfunc f(x byte) byte { t := [16]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}; return t[x&15] }"},
		{"an import of crypto/aes", "package p\nimport \"crypto/aes\"\nvar _ = aes.NewCipher"},
	} {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, "p.go", c.src, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(runtimeIndexedTables(fset, []*ast.File{f})) == 0 {
			t.Errorf("%s: not found", c.name)
		}
	}
	ok := "package p\nconst n = 2\nvar k [4]uint64\nfunc f(x *[4]uint64) { var w [8]uint32; for i := range w { w[i] = uint32(i) }; x[0] = k[n+1] ^ k[0] }"
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", ok, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	if p := runtimeIndexedTables(fset, []*ast.File{f}); len(p) != 0 {
		t.Errorf("constant indexes and local work arrays flagged: %v", p)
	}
}

// runtimeIndexedTables returns, for the files of one package: every package-level
// variable of array, slice, map or string type (by its declared type, a named type
// declared in the package or in aesbs, or its initial value) that is indexed by
// anything but a constant; every string literal indexed by a non-constant; every
// array or slice literal of 16 or more elements (a table, wherever declared); and
// every import of crypto/aes or crypto/cipher.
func runtimeIndexedTables(fset *token.FileSet, files []*ast.File) (problems []string) {
	tableTypes := map[string]bool{"Planes": true, "Block": true} // aesbs's, used qualified elsewhere
	consts := map[string]bool{"true": true, "false": true}
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, s := range g.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if isTableType(s.Type, nil) {
						tableTypes[s.Name.Name] = true
					}
				case *ast.ValueSpec:
					if g.Tok == token.CONST {
						for _, n := range s.Names {
							consts[n.Name] = true
						}
					}
				}
			}
		}
	}
	tables := map[string]bool{}
	for _, f := range files {
		for _, imp := range f.Imports {
			if p := strings.Trim(imp.Path.Value, "\""); p == "crypto/aes" || p == "crypto/cipher" {
				problems = append(problems, fmt.Sprintf("%s imports %s", fset.Position(imp.Pos()), p))
			}
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				table := vs.Type != nil && isTableType(vs.Type, tableTypes)
				for _, v := range vs.Values {
					table = table || isTableValue(v, tableTypes)
				}
				for _, n := range vs.Names {
					tables[n.Name] = tables[n.Name] || table
				}
			}
		}
	}
	var isConst func(e ast.Expr) bool
	isConst = func(e ast.Expr) bool {
		switch e := e.(type) {
		case *ast.BasicLit:
			return true
		case *ast.Ident:
			return consts[e.Name]
		case *ast.ParenExpr:
			return isConst(e.X)
		case *ast.UnaryExpr:
			return isConst(e.X)
		case *ast.BinaryExpr:
			return isConst(e.X) && isConst(e.Y)
		}
		return false
	}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.IndexExpr:
				if isConst(n.Index) {
					break
				}
				switch x := n.X.(type) {
				case *ast.Ident:
					if tables[x.Name] {
						problems = append(problems, fmt.Sprintf("%s: table %s indexed at run time", fset.Position(n.Pos()), x.Name))
					}
				case *ast.BasicLit:
					if x.Kind == token.STRING {
						problems = append(problems, fmt.Sprintf("%s: string literal indexed at run time", fset.Position(n.Pos())))
					}
				}
			case *ast.CompositeLit:
				if n.Type != nil && isTableType(n.Type, nil) && len(n.Elts) >= 16 {
					problems = append(problems, fmt.Sprintf("%s: a table literal of %d elements", fset.Position(n.Pos()), len(n.Elts)))
				}
			}
			return true
		})
	}
	return problems
}

// isTableType reports whether t is an array, slice, map or string type, or one of
// named (by name, qualified or not).
func isTableType(t ast.Expr, named map[string]bool) bool {
	switch t := t.(type) {
	case *ast.ArrayType, *ast.MapType:
		return true
	case *ast.Ident:
		return t.Name == "string" || named[t.Name]
	case *ast.SelectorExpr:
		return named[t.Sel.Name]
	case *ast.ParenExpr:
		return isTableType(t.X, named)
	}
	return false
}

// isTableValue reports whether v makes a table: a composite literal or a
// conversion of table type, a string literal, or a call of a function literal
// that returns one.
func isTableValue(v ast.Expr, named map[string]bool) bool {
	switch v := v.(type) {
	case *ast.CompositeLit:
		return v.Type != nil && isTableType(v.Type, named)
	case *ast.BasicLit:
		return v.Kind == token.STRING
	case *ast.CallExpr:
		if fl, ok := v.Fun.(*ast.FuncLit); ok {
			r := fl.Type.Results
			return r != nil && len(r.List) > 0 && isTableType(r.List[0].Type, named)
		}
		return isTableType(v.Fun, named)
	}
	return false
}
