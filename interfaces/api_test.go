package interfaces_test

import (
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const (
	interfacesPath = "github.com/sottonet/sotto/interfaces"
	// generatedPrefix is where the protoc output lives: Go's internal rule
	// already keeps other modules from importing it, and this test keeps it
	// out of every exported signature, so plugin authors never compile
	// against generated code (docs/PLUGINS.md, "What the interfaces package
	// exports, and why").
	generatedPrefix = interfacesPath + "/internal/"
)

func isGenerated(pkgPath string) bool { return strings.HasPrefix(pkgPath, generatedPrefix) }

// The exported API of package interfaces (every exported name, exported
// struct field, exported method, including methods and fields promoted from
// embedded ones) mentions no type from interfaces/internal/....
func TestExportedAPIHidesGeneratedTypes(t *testing.T) {
	imp := exportDataImporter(t, interfacesPath)
	pkg, err := imp.Import(interfacesPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkg.Scope().Names()) < 50 {
		t.Fatalf("package interfaces has only %d names: the check would pass vacuously", len(pkg.Scope().Names()))
	}
	for _, leak := range apiLeaks(pkg) {
		t.Errorf("exported API mentions a generated type: %s", leak)
	}
}

// The check above must be able to fail: a package that leaks generated
// types in each way an API can is caught in each of them.
func TestAPILeakCheckCatchesLeaks(t *testing.T) {
	const src = `package leaky

import (
	pkiv1 "github.com/sottonet/sotto/interfaces/internal/proto/pki/v1"
	"github.com/sottonet/sotto/interfaces"
)

type EmbedsServer struct{ pkiv1.UnimplementedPKIServer }   // promoted methods
type Field struct{ Req *pkiv1.PublishRequest }            // exported field
type hidden struct{ req *pkiv1.PublishRequest }           // fine: unexported
type Clean struct{ hidden; n int }                        // fine
type viaUnexported struct{ pkiv1.UnimplementedPKIServer }
type Promotes struct{ viaUnexported }                     // promoted through an unexported embed
type shim struct{}
func (shim) Call(*pkiv1.DocumentRequest) {}
func NewShim() shim { return shim{} }                     // exported method of an unexported result
func Returns() *pkiv1.DocumentResponse { return nil }     // result
func Takes(map[string][]*pkiv1.Equivocation) {}           // parameter, nested
var Inferred = &pkiv1.EvidenceRequest{}                   // inferred type
type Alias = pkiv1.EvidenceResponse                       // alias
type Iface interface{ Do() pkiv1.PKIClient }              // interface method
func Fine(interfaces.Storage) *Clean { return nil }       // fine
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "leaky.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	conf := types.Config{Importer: exportDataImporter(t, interfacesPath)}
	pkg, err := conf.Check("example.com/leaky", fset, []*ast.File{f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, leak := range apiLeaks(pkg) {
		got = append(got, strings.SplitN(leak, ":", 2)[0])
	}
	got = slices.Compact(got)
	want := []string{"Alias", "EmbedsServer", "Field", "Iface", "Inferred", "NewShim", "Promotes", "Returns", "Takes"}
	if !slices.Equal(got, want) {
		t.Fatalf("leaks found in %v, want %v", got, want)
	}
}

// apiLeaks lists, as "Name: path to the leak", each way the exported API
// of pkg mentions a type of a generated package. Sorted by name.
func apiLeaks(pkg *types.Package) []string {
	w := &leakWalker{home: pkg, seen: map[types.Type]bool{}}
	for _, name := range pkg.Scope().Names() {
		obj := pkg.Scope().Lookup(name)
		if !obj.Exported() {
			continue
		}
		w.where = name
		switch obj := obj.(type) {
		case *types.TypeName:
			if obj.IsAlias() {
				w.typ(types.Unalias(obj.Type()), "alias")
				continue
			}
			w.named(obj.Type().(*types.Named), name)
		default: // funcs, vars, consts
			w.typ(obj.Type(), "type")
		}
	}
	return w.leaks
}

type leakWalker struct {
	home  *types.Package
	where string // the exported name being checked
	seen  map[types.Type]bool
	leaks []string
}

// typ walks what a user of the API can reach through t.
func (w *leakWalker) typ(t types.Type, path string) {
	t = types.Unalias(t)
	switch t := t.(type) {
	case *types.Named:
		if p := t.Obj().Pkg(); p != nil && isGenerated(p.Path()) {
			w.leaks = append(w.leaks, w.where+": "+path+": "+t.String())
			return
		}
		for i := range t.TypeArgs().Len() {
			w.typ(t.TypeArgs().At(i), path+"[type argument]")
		}
		// Other packages' types are their own API; this package's exported
		// types are checked under their own name. An unexported type of
		// this package reached from the API exposes its exported surface.
		if p := t.Obj().Pkg(); p == w.home && !t.Obj().Exported() {
			w.named(t, path)
		}
	case *types.Pointer:
		w.typ(t.Elem(), path)
	case *types.Slice:
		w.typ(t.Elem(), path+"[]")
	case *types.Array:
		w.typ(t.Elem(), path+"[]")
	case *types.Map:
		w.typ(t.Key(), path+"[key]")
		w.typ(t.Elem(), path+"[value]")
	case *types.Chan:
		w.typ(t.Elem(), path+"<-")
	case *types.Signature:
		for v := range t.Params().Variables() {
			w.typ(v.Type(), path+"(param "+v.Name()+")")
		}
		for v := range t.Results().Variables() {
			w.typ(v.Type(), path+"(result)")
		}
	case *types.Struct:
		w.fields(t, path)
	case *types.Interface:
		for m := range t.Methods() {
			if m.Exported() {
				w.typ(m.Type(), path+"."+m.Name())
			}
		}
	}
}

// named walks a named type of this package: its underlying type's visible
// parts and the exported methods of *T (promoted ones included).
func (w *leakWalker) named(t *types.Named, path string) {
	if w.seen[t] {
		return
	}
	w.seen[t] = true
	w.typ(t.Underlying(), path)
	ms := types.NewMethodSet(types.NewPointer(t))
	for sel := range ms.Methods() {
		if m := sel.Obj(); m.Exported() {
			w.typ(m.Type(), path+"."+m.Name())
		}
	}
}

// fields walks a struct's exported fields, and the fields promoted to it
// from embedded ones.
func (w *leakWalker) fields(s *types.Struct, path string) {
	for f := range s.Fields() {
		switch {
		case f.Exported():
			w.typ(f.Type(), path+"."+f.Name())
		case f.Embedded():
			t := types.Unalias(f.Type())
			if p, ok := t.(*types.Pointer); ok {
				t = types.Unalias(p.Elem())
			}
			if st, ok := t.Underlying().(*types.Struct); ok {
				w.fields(st, path+"."+f.Name())
			}
		}
	}
}

// exportDataImporter imports pkgs and their dependencies from the compiler's
// export data, located with `go list -export` (so it sees exactly what the
// build sees, generated code included).
func exportDataImporter(t *testing.T, pkgs ...string) types.Importer {
	t.Helper()
	args := append([]string{"list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}"}, pkgs...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	exports := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		path, file, _ := strings.Cut(line, "\t")
		exports[path] = file
	}
	return importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok || file == "" {
			return nil, &os.PathError{Op: "import", Path: path, Err: os.ErrNotExist}
		}
		return os.Open(file)
	})
}
