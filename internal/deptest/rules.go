// Package deptest holds the dependency rules of the tree as data and as a
// test (after tailscale's deptest). The protocol core stays free of RPC,
// plugin machinery and everything built on it; the plugin contract never
// pulls in the host, a plugin or the client; a plugin never imports the
// host, the client or another plugin; the client (also built for js/wasm)
// stays free of the host, plugins, go-plugin, Badger, and under js/wasm of
// libp2p.
//
// The rules hold for production and test files alike. Tests that run one
// part under another on purpose (a plugin under the host's supervisor, a
// client against a real provider, whole node processes) live where no rule
// forbids the arrow: in the host (host/plugin runs the plugins' binaries,
// host/provider and host/node run clients against real nodes) and in
// cmd/sotto and internal/ (the demo, localnet). A part tests itself through
// the contracts alone: a plugin through interfaces/plugintest (in process,
// over gRPC, or its real binary), the client against a provider speaking
// the wire format.
package deptest

import (
	"fmt"
	"slices"
	"strings"
)

// Module is the import path of the tree the rules are about.
const Module = "github.com/sottonet/sotto"

// A Rule forbids packages under From to depend, directly or not, on any
// package under one of Forbid. Paths without a dot in their first element
// are relative to Module. A trailing "/*" makes each folder below its own
// unit: From "plugins/*" is every plugin, and Forbid "plugins/*" is every
// plugin other than the importing one. GOOS and GOARCH, when set, are the
// platform the rule is checked on (the client's browser build).
type Rule struct {
	From   string
	Forbid []string
	// Except are path prefixes (relative to Module) of packages under From
	// the rule does not apply to.
	Except []string
	GOOS   string
	GOARCH string
}

// Rules are the house's dependency rules (docs/PLUGINS.md, "Layout").
var Rules = []Rule{
	{From: "core", Forbid: []string{"host", "plugins", "client", "interfaces", "examples",
		"google.golang.org/grpc", "github.com/hashicorp/go-plugin"}},
	{From: "interfaces", Forbid: []string{"host", "plugins", "client", "examples"}},
	{From: "plugins/*", Forbid: []string{"host", "client", "plugins/*", "examples"}},
	// Only storage plugins open databases: a plugin with state keeps it in
	// the host KV (interfaces.Host), so a node has one store to back up.
	{From: "plugins/*", Forbid: []string{"github.com/dgraph-io/badger", "github.com/jackc/pgx", "github.com/lib/pq",
		"database/sql", "go.etcd.io/bbolt", "github.com/mattn/go-sqlite3", "modernc.org/sqlite"},
		Except: []string{"plugins/storage-"}},
	// Examples show the public surfaces: a plugin built on interfaces, an
	// application built on the client; never the host or a plugin.
	{From: "examples/*", Forbid: []string{"host", "plugins", "examples/*",
		"github.com/dgraph-io/badger", "github.com/jackc/pgx", "github.com/lib/pq", "database/sql"}},
	{From: "client", Forbid: []string{"host", "plugins", "examples",
		"github.com/hashicorp/go-plugin", "github.com/dgraph-io/badger"}},
	{From: "client", Forbid: []string{"host", "plugins", "examples",
		"github.com/hashicorp/go-plugin", "github.com/dgraph-io/badger", "github.com/libp2p"},
		GOOS: "js", GOARCH: "wasm"},
	// The browser's provider link is the client's: the protocol over a
	// byte stream that JavaScript opens, nothing of the host or libp2p.
	{From: "web/streamlink", Forbid: []string{"host", "plugins", "examples",
		"github.com/libp2p", "github.com/hashicorp/go-plugin", "github.com/dgraph-io/badger"}},
}

// String reads a rule as in the issue: "plugins/* ↛ host, client, plugins/*".
func (r Rule) String() string {
	s := r.From + " ↛ " + strings.Join(r.Forbid, ", ")
	if len(r.Except) > 0 {
		s += " (except " + strings.Join(r.Except, ", ") + ")"
	}
	if r.GOOS != "" {
		s += " (" + r.GOOS + "/" + r.GOARCH + ")"
	}
	return s
}

// Platform is "" for the native build, or GOOS/GOARCH.
func (r Rule) Platform() string {
	if r.GOOS == "" {
		return ""
	}
	return r.GOOS + "/" + r.GOARCH
}

func abs(p string) string {
	first, _, _ := strings.Cut(p, "/")
	if strings.Contains(first, ".") {
		return p
	}
	return Module + "/" + p
}

// under reports whether pkg is pattern's package or below it.
func under(pkg, pattern string) bool {
	return pkg == pattern || strings.HasPrefix(pkg, pattern+"/")
}

// unit returns, for a pattern ending in "/*", the unit pkg belongs to
// ("…/plugins/pki-gossip" for "…/plugins/pki-gossip/cmd"); for other
// patterns the pattern itself. ok is false when pkg is not under pattern.
func unit(pkg, pattern string) (string, bool) {
	base, each := strings.CutSuffix(pattern, "/*")
	base = abs(base)
	if !under(pkg, base) || (each && pkg == base) {
		return "", false
	}
	if !each {
		return base, true
	}
	rest := strings.TrimPrefix(pkg, base+"/")
	first, _, _ := strings.Cut(rest, "/")
	return base + "/" + first, true
}

func (r Rule) excepted(pkg string) bool {
	for _, e := range r.Except {
		if strings.HasPrefix(pkg, abs(e)) {
			return true
		}
	}
	return false
}

// A Violation is one forbidden edge: Pkg (with its tests) depends on Dep.
type Violation struct {
	Rule Rule
	Pkg  string
	Dep  string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s depends on %s, against %s", v.Pkg, v.Dep, v.Rule)
}

// Check applies rule to a dependency graph: each package of the tree (by
// import path, tests folded into their package) to everything it depends
// on. Violations come sorted.
func Check(rule Rule, graph map[string][]string) []Violation {
	var out []Violation
	for pkg, deps := range graph {
		self, ok := unit(pkg, rule.From)
		if !ok || rule.excepted(pkg) {
			continue
		}
		for _, dep := range deps {
			for _, f := range rule.Forbid {
				u, ok := unit(dep, f)
				if !ok {
					continue
				}
				if strings.HasSuffix(f, "/*") && u == self {
					continue // a plugin may import its own packages
				}
				out = append(out, Violation{Rule: rule, Pkg: pkg, Dep: dep})
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b Violation) int {
		return strings.Compare(a.Pkg+" "+a.Dep, b.Pkg+" "+b.Dep)
	})
	return out
}
