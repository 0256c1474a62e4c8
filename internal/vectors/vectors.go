// Package vectors locates and loads the published test vectors that tests
// read from ../shared/vectors, a directory beside the repository (never
// copied into it; see NOTICE). Only tests import it.
//
// The rules, the same for every vector test:
//   - a file named by an environment variable (Named) must exist, or the
//     test fails;
//   - if the shared vectors directory is absent, the test is skipped, unless
//     SOTTO_REQUIRE_VECTORS=1 (as in CI), when it fails;
//   - if the directory is there, a vector file missing from it fails the test;
//   - a file that decodes to an empty list of vectors fails the test (Load).
package vectors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// RequireEnv, set to 1, turns an absent shared vectors directory from a skip
// into a failure.
const RequireEnv = "SOTTO_REQUIRE_VECTORS"

const module = "github.com/sottonet/sotto"

// Dir returns the default vectors directory, ../shared/vectors relative to the
// repository root (the directory of the module's go.mod, found upwards from
// the test's working directory). It does not check that the directory exists.
func Dir(tb testing.TB) string {
	tb.Helper()
	root, err := repoRoot()
	if err != nil {
		tb.Fatalf("vectors: %v", err)
	}
	return filepath.Join(filepath.Dir(root), "shared", "vectors")
}

// Path returns the vector file rel (slash-separated, e.g. "aez/aez_v5_prf.json")
// in the default vectors directory. If that directory is absent it skips tb, or
// fails it when SOTTO_REQUIRE_VECTORS=1; if the file is absent from a present
// directory it fails tb.
func Path(tb testing.TB, rel string) string {
	tb.Helper()
	return locate(tb, Dir(tb), rel)
}

// Named is Path, except that a non-empty environment variable env names the
// file to use instead, and that file must exist.
func Named(tb testing.TB, env, rel string) string {
	tb.Helper()
	if name := os.Getenv(env); name != "" {
		if _, err := os.Stat(name); err != nil {
			tb.Fatalf("%s=%s names a vector file that cannot be read: %v", env, name, err)
		}
		return name
	}
	return Path(tb, rel)
}

// locate applies the rules of Path with dir as the default directory.
func locate(tb testing.TB, dir, rel string) string {
	tb.Helper()
	name := filepath.Join(dir, filepath.FromSlash(rel))
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		require, perr := required()
		switch {
		case perr != nil:
			tb.Fatalf("vectors: %v", perr)
		case require:
			tb.Fatalf("%s=1 but the shared vectors directory %s is absent (needed for %s)", RequireEnv, dir, rel)
		default:
			tb.Skipf("the shared vectors directory %s is absent, so %s is not checked (set %s=1 to fail instead)", dir, rel, RequireEnv)
		}
		return ""
	} else if err != nil {
		tb.Fatalf("vectors: %v", err)
	}
	if _, err := os.Stat(name); err != nil {
		tb.Fatalf("vector file %s is missing from %s: %v", rel, dir, err)
	}
	return name
}

// required reports whether SOTTO_REQUIRE_VECTORS asks for the vectors.
func required() (bool, error) {
	v := os.Getenv(RequireEnv)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want 1 or 0", RequireEnv, v)
	}
	return b, nil
}

// Load reads the JSON vector file name into v, a non-nil pointer. It fails tb
// if the file cannot be read or decoded, or holds no vectors: v is a list
// that is empty, or a struct that is all zero or has an empty list field.
func Load(tb testing.TB, name string, v any) {
	tb.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatalf("vector file: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("vector file %s: %v", name, err)
	}
	if err := checkNonEmpty(filepath.Base(name), reflect.ValueOf(v)); err != nil {
		tb.Fatal(err)
	}
}

// checkNonEmpty checks the top level of a decoded vector file; lists nested
// in the vectors themselves (an empty associated-data list, say) may be empty.
func checkNonEmpty(name string, v reflect.Value) error {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return fmt.Errorf("vector file %s holds no vectors (null)", name)
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		if v.Len() == 0 {
			return fmt.Errorf("vector list %s is empty", name)
		}
	case reflect.Struct:
		if v.IsZero() {
			return fmt.Errorf("vector file %s holds no vectors (every field is empty)", name)
		}
		for i := range v.NumField() {
			f := v.Field(i)
			switch f.Kind() {
			case reflect.Slice, reflect.Array, reflect.Map:
				if f.Len() == 0 {
					return fmt.Errorf("vector list %s.%s is empty", name, v.Type().Field(i).Name)
				}
			}
		}
	}
	return nil
}

// repoRoot finds the directory holding this module's go.mod, upwards from
// the working directory (a package directory under go test).
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePath(b) == module {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above %s", module, wd)
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	for line := range strings.SplitSeq(string(gomod), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}
