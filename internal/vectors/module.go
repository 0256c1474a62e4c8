package vectors

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ModuleFile returns the file rel (slash-separated) of the published test
// data of module mod, a dependency of this module, as the module cache
// holds it (`go list -m -f {{.Dir}} mod`, read in place, never copied). If
// the module is not in the cache (an offline machine that never
// downloaded it) it skips tb, or fails it when SOTTO_REQUIRE_VECTORS=1;
// if the module is there but the file is not, it fails tb.
func ModuleFile(tb testing.TB, mod, rel string) string {
	tb.Helper()
	root, err := repoRoot()
	if err != nil {
		tb.Fatalf("vectors: %v", err)
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod)
	cmd.Dir = root
	out, err := cmd.Output()
	dir := strings.TrimSpace(string(out))
	if err == nil && dir != "" {
		if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
			dir = ""
		}
	}
	if err != nil || dir == "" {
		require, perr := required()
		switch {
		case perr != nil:
			tb.Fatalf("vectors: %v", perr)
		case require:
			tb.Fatalf("%s=1 but module %s is not in the module cache (needed for %s): %v", RequireEnv, mod, rel, err)
		default:
			tb.Skipf("module %s is not in the module cache, so %s is not checked (set %s=1 to fail instead)", mod, rel, RequireEnv)
		}
		return ""
	}
	name := filepath.Join(dir, filepath.FromSlash(rel))
	if _, err := os.Stat(name); err != nil {
		tb.Fatalf("vector file %s is missing from module %s at %s: %v", rel, mod, dir, err)
	}
	return name
}
