package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/sottonet/sotto"

func TestDependencyRules(t *testing.T) {
	for _, rule := range []struct {
		pkgs      string
		forbidden []string
	}{
		{"./interfaces/...", []string{module + "/host"}},
		{"./core/...", []string{"google.golang.org/grpc", "github.com/hashicorp/go-plugin", module + "/host"}},
		{"./client/...", []string{"github.com/hashicorp/go-plugin", "github.com/dgraph-io/badger"}},
		{"./examples/...", []string{module + "/host"}},
	} {
		t.Run(rule.pkgs+" avoids "+strings.Join(rule.forbidden, ", "), func(t *testing.T) {
			deps := listDeps(t, rule.pkgs)
			if deps == nil {
				t.Skipf("%s has no packages yet", rule.pkgs)
			}
			for pkg, imports := range deps {
				for _, dep := range imports {
					for _, bad := range rule.forbidden {
						if dep == bad || strings.HasPrefix(dep, bad+"/") {
							t.Errorf("%s depends on %s", pkg, dep)
						}
					}
				}
			}
		})
	}
}

// listDeps maps each package matching pattern to its transitive imports
// (test files excluded: tests may use anything). nil: no such packages.
func listDeps(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", pattern)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && strings.Contains(string(ee.Stderr), "matched no packages") {
			return nil
		}
		t.Fatalf("go list %s: %v", pattern, err)
	}
	deps := map[string][]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], module) {
			continue
		}
		deps[f[0]] = f[1:]
	}
	if len(deps) == 0 {
		return nil
	}
	return deps
}

// The rules above would pass vacuously if listDeps saw no imports.
func TestListDepsSeesImports(t *testing.T) {
	deps := listDeps(t, "./interfaces")
	found := false
	for _, d := range deps[module+"/interfaces"] {
		found = found || d == "github.com/hashicorp/go-plugin"
	}
	if !found {
		t.Fatalf("listDeps(./interfaces) = %v, missing go-plugin", deps)
	}
}
