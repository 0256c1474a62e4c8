package deptest

import (
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// root is the module's root, two folders up.
const root = "../.."

var graphs sync.Map // platform → map[string][]string

// treeGraph is the dependency graph of the whole tree on a platform,
// loaded once per test binary.
func treeGraph(t *testing.T, platform string) map[string][]string {
	t.Helper()
	if g, ok := graphs.Load(platform); ok {
		return g.(map[string][]string)
	}
	g, err := Graph(t.Context(), root, platform, "", "./...")
	if err != nil {
		t.Fatal(err)
	}
	graphs.Store(platform, g)
	return g
}

func TestRulesHoldOnTheTree(t *testing.T) {
	for _, rule := range Rules {
		t.Run(rule.String(), func(t *testing.T) {
			g := treeGraph(t, rule.Platform())
			covered := 0
			for pkg := range g {
				if _, ok := unit(pkg, rule.From); ok {
					covered++
				}
			}
			if covered == 0 {
				t.Fatalf("no package of the tree is under %s: the rule checks nothing", rule.From)
			}
			for _, v := range Check(rule, g) {
				t.Error(v)
			}
		})
	}
}

// The rules would pass vacuously if the graph missed imports: it must see
// a production import (interfaces → go-plugin) and an import made only by
// a test file, and fold test variants into their package.
func TestGraphSeesProductionAndTestImports(t *testing.T) {
	g := treeGraph(t, "")
	if !slices.Contains(g[Module+"/interfaces"], "github.com/hashicorp/go-plugin") {
		t.Fatalf("graph of interfaces misses go-plugin: %v", g[Module+"/interfaces"])
	}
	for pkg := range g {
		if strings.ContainsAny(pkg, " []") || strings.HasSuffix(pkg, ".test") || strings.HasSuffix(pkg, "_test") {
			t.Fatalf("test variant %q not folded into its package", pkg)
		}
	}
	// This package's tests import encoding/json; its production files do not.
	if !slices.Contains(g[Module+"/internal/deptest"], "encoding/json") {
		t.Fatal("an import made only by a test file is not in the graph")
	}
}

// Check itself, on graphs written by hand: each rule flags an edge it
// forbids and lets through what it allows.
func TestCheckOnHandWrittenGraphs(t *testing.T) {
	m := func(p string) string { return Module + "/" + p }
	for _, tc := range []struct {
		name  string
		rule  Rule
		graph map[string][]string
		want  int
	}{
		{"core importing the host", ruleFor(t, "core", ""), map[string][]string{m("core/sphinx"): {m("host/node/x")}}, 1},
		{"core importing grpc below its root", ruleFor(t, "core", ""), map[string][]string{m("core/mix"): {"google.golang.org/grpc/codes"}}, 1},
		{"core importing core", ruleFor(t, "core", ""), map[string][]string{m("core/mix"): {m("core/sphinx")}}, 0},
		{"a name that only starts like a forbidden one", ruleFor(t, "core", ""), map[string][]string{m("core/clientproto"): {m("clientx")}}, 0},
		{"a plugin importing its own packages", ruleFor(t, "plugins/*", ""), map[string][]string{m("plugins/pki-gossip/cmd/pki-gossip"): {m("plugins/pki-gossip")}}, 0},
		{"a plugin importing another", ruleFor(t, "plugins/*", ""), map[string][]string{m("plugins/pki-static"): {m("plugins/storage-badger")}}, 1},
		{"an example importing a plugin", ruleFor(t, "examples/*", ""), map[string][]string{m("examples/chat"): {m("plugins/storage-badger")}}, 1},
		{"the client importing libp2p natively", ruleFor(t, "client", ""), map[string][]string{m("client/p2p"): {"github.com/libp2p/go-libp2p"}}, 0},
		{"the client importing libp2p in the browser", ruleFor(t, "client", "js/wasm"), map[string][]string{m("client"): {"github.com/libp2p/go-libp2p/core"}}, 1},
		{"a storage plugin opening its database", dbRule(t), map[string][]string{m("plugins/storage-badger"): {"github.com/dgraph-io/badger/v4"}}, 0},
		{"the PostgreSQL storage plugin opening its database", dbRule(t), map[string][]string{m("plugins/storage-postgres"): {"github.com/jackc/pgx/v5/pgxpool"}}, 0},
		{"another plugin opening a database", dbRule(t), map[string][]string{m("plugins/pay-blindsig"): {"github.com/dgraph-io/badger/v4"}}, 1},
		{"packages outside the rule", ruleFor(t, "interfaces", ""), map[string][]string{m("host/node"): {m("plugins/x")}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Check(tc.rule, tc.graph); len(got) != tc.want {
				t.Fatalf("Check = %v, want %d violations", got, tc.want)
			}
		})
	}
}

// A test of the test: for every rule and every entry it forbids, a file
// importing that entry is planted (through go list's overlay, the tree is
// not touched) in a package the rule covers, and the rule must catch it.
// Plants alternate between a production file and a test file, so both are
// seen to count.
func TestEveryRuleCatchesAPlantedViolation(t *testing.T) {
	if testing.Short() {
		t.Skip("plants one file per forbidden entry and lists the tree each time")
	}
	dir, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	native := treeGraph(t, "")
	n := 0
	for _, rule := range Rules {
		from := pick(native, rule.From, "", rule.excepted)
		if from == "" {
			t.Fatalf("%s: no package under %s to plant in", rule, rule.From)
		}
		planted := 0
		for _, f := range rule.Forbid {
			target := pick(native, f, from, nil)
			if target == "" {
				// A forbidden module the tree does not use at all (a
				// database driver nobody imports) cannot be planted.
				t.Logf("%s: nothing under %s in the module graph to plant", rule, f)
				continue
			}
			planted++
			asTest := n%2 == 1
			n++
			t.Run(fmt.Sprintf("%s imports %s (test file %v)", from, target, asTest), func(t *testing.T) {
				t.Parallel()
				overlay := plant(t, dir, from, target, asTest)
				g, err := Graph(t.Context(), dir, rule.Platform(), overlay, "./"+strings.TrimPrefix(from, Module+"/"))
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, v := range Check(rule, g) {
					found = found || (v.Pkg == from && v.Dep == target)
				}
				if !found {
					t.Fatalf("%s: a planted import of %s in %s went unnoticed", rule, target, from)
				}
			})
		}
		if planted == 0 {
			t.Fatalf("%s: no forbidden entry could be planted", rule)
		}
	}
}

// pick returns an importable package of the graph (or a dependency of
// one) under pattern, outside the unit of not: the shortest such path, so
// the choice is stable.
func pick(g map[string][]string, pattern, not string, skip func(string) bool) string {
	set := map[string]bool{}
	for pkg, deps := range g {
		set[pkg] = true
		for _, d := range deps {
			set[d] = true
		}
	}
	cands := slices.Collect(maps.Keys(set))
	slices.SortFunc(cands, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	notUnit, _ := unit(not, pattern)
	for _, c := range cands {
		u, ok := unit(c, pattern)
		if !ok || (not != "" && u == notUnit) || strings.Contains(c, "/internal/") || strings.Contains(c, "/cmd/") || (skip != nil && skip(c)) {
			continue
		}
		return c
	}
	return ""
}

// packageName reads the package clause of a non-test file in dir.
func packageName(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return "", err
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly)
		if err != nil {
			return "", err
		}
		return af.Name.Name, nil
	}
	return "", fmt.Errorf("no Go file in %s", dir)
}

// plant writes an overlay that adds to package pkg a file importing dep.
func plant(t *testing.T, dir, pkg, dep string, asTest bool) string {
	t.Helper()
	pkgDir := filepath.Join(dir, strings.TrimPrefix(pkg, Module+"/"))
	name := "zz_planted.go"
	if asTest {
		name = "zz_planted_test.go"
	}
	pkgName, err := packageName(pkgDir)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), name)
	body := fmt.Sprintf("package %s\n\nimport _ %q\n", pkgName, dep)
	if err := os.WriteFile(src, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ov, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(pkgDir, name): src}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "overlay.json")
	if err := os.WriteFile(path, ov, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ruleFor finds the first rule from a path on a platform.
func ruleFor(t *testing.T, from, platform string) Rule {
	t.Helper()
	for _, r := range Rules {
		if r.From == from && r.Platform() == platform && len(r.Except) == 0 {
			return r
		}
	}
	t.Fatalf("no rule from %s on %q", from, platform)
	return Rule{}
}

// dbRule is the rule that keeps databases to storage plugins.
func dbRule(t *testing.T) Rule {
	t.Helper()
	for _, r := range Rules {
		if len(r.Except) > 0 {
			return r
		}
	}
	t.Fatal("no rule keeps databases to storage plugins")
	return Rule{}
}
