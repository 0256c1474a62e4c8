package vectors

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeTB records how a helper ended the test instead of ending the real one.
type fakeTB struct {
	testing.TB // the real test, for methods the helpers are not expected to call
	outcome    string
	msg        string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) stop(outcome, msg string) {
	f.outcome, f.msg = outcome, msg
	runtime.Goexit()
}

func (f *fakeTB) Fatal(args ...any)                 { f.stop("fail", fmt.Sprint(args...)) }
func (f *fakeTB) Fatalf(format string, args ...any) { f.stop("fail", fmt.Sprintf(format, args...)) }
func (f *fakeTB) FailNow()                          { f.stop("fail", "") }
func (f *fakeTB) Skip(args ...any)                  { f.stop("skip", fmt.Sprint(args...)) }
func (f *fakeTB) Skipf(format string, args ...any)  { f.stop("skip", fmt.Sprintf(format, args...)) }
func (f *fakeTB) SkipNow()                          { f.stop("skip", "") }
func (f *fakeTB) Error(args ...any)                 { f.stop("fail", fmt.Sprint(args...)) }
func (f *fakeTB) Errorf(format string, args ...any) { f.stop("fail", fmt.Sprintf(format, args...)) }

// run calls f with a fake TB on its own goroutine (Fatal and Skip end it
// with runtime.Goexit, as the real ones do) and returns the fake.
func run(t *testing.T, f func(tb testing.TB)) *fakeTB {
	fb := &fakeTB{TB: t, outcome: "pass"}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(fb)
	}()
	<-done
	return fb
}

func TestRules(t *testing.T) {
	tmp := t.TempDir()
	present := filepath.Join(tmp, "vectors")
	if err := os.MkdirAll(filepath.Join(present, "kind"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(present, "kind", "v.json")
	write := func(name, body string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write(filepath.Join("vectors", "kind", "v.json"), `[{"a":"00"}]`)
	absent := filepath.Join(tmp, "absent", "vectors")

	type vec struct{ A string }
	type withList struct {
		Name string
		List []vec
	}
	type flat struct{ A, B string }
	loadInto := func(name string, v any) func(testing.TB) {
		return func(tb testing.TB) { Load(tb, name, v) }
	}

	for _, tt := range []struct {
		name    string
		require string // SOTTO_REQUIRE_VECTORS
		env     string // SOTTO_TEST_VECTORS, for Named
		f       func(tb testing.TB)
		outcome string
		msg     string // in the message
	}{
		{"named file missing fails", "", "/nonexistent/v.json",
			func(tb testing.TB) { Named(tb, "SOTTO_TEST_VECTORS", "kind/v.json") }, "fail", "SOTTO_TEST_VECTORS=/nonexistent/v.json"},
		{"named file missing fails even if vectors are not required", "0", filepath.Join(tmp, "nope.json"),
			func(tb testing.TB) { Named(tb, "SOTTO_TEST_VECTORS", "kind/v.json") }, "fail", "cannot be read"},
		{"named file present is used", "", file,
			func(tb testing.TB) {
				if got := Named(tb, "SOTTO_TEST_VECTORS", "does/not/matter.json"); got != file {
					tb.Fatalf("Named = %s, want %s", got, file)
				}
			}, "pass", ""},
		{"absent default skips", "", "",
			func(tb testing.TB) { locate(tb, absent, "kind/v.json") }, "skip", "is absent"},
		{"absent default with SOTTO_REQUIRE_VECTORS=0 skips", "0", "",
			func(tb testing.TB) { locate(tb, absent, "kind/v.json") }, "skip", "SOTTO_REQUIRE_VECTORS=1"},
		{"absent default with SOTTO_REQUIRE_VECTORS=1 fails", "1", "",
			func(tb testing.TB) { locate(tb, absent, "kind/v.json") }, "fail", "is absent"},
		{"bad SOTTO_REQUIRE_VECTORS fails", "yes please", "",
			func(tb testing.TB) { locate(tb, absent, "kind/v.json") }, "fail", "want 1 or 0"},
		{"file missing from present default fails", "", "",
			func(tb testing.TB) { locate(tb, present, "kind/other.json") }, "fail", "kind/other.json is missing"},
		{"file in present default is found", "1", "",
			func(tb testing.TB) {
				if got := locate(tb, present, "kind/v.json"); got != file {
					tb.Fatalf("locate = %s, want %s", got, file)
				}
			}, "pass", ""},
		{"empty list fails", "", "",
			loadInto(write("empty.json", `[]`), &[]vec{}), "fail", "vector list empty.json is empty"},
		{"null list fails", "", "",
			loadInto(write("null.json", `null`), &[]vec{}), "fail", "vector list null.json is empty"},
		{"empty list inside fails", "", "",
			loadInto(write("inner.json", `{"Name":"x","List":[]}`), &withList{}), "fail", "vector list inner.json.List is empty"},
		{"missing list inside fails", "", "",
			loadInto(write("noinner.json", `{"Name":"x"}`), &withList{}), "fail", "vector list noinner.json.List is empty"},
		{"empty object fails", "", "",
			loadInto(write("obj.json", `{}`), &flat{}), "fail", "holds no vectors"},
		{"bad JSON fails", "", "",
			loadInto(write("bad.json", `[{`), &[]vec{}), "fail", "bad.json"},
		{"missing file fails", "", "",
			loadInto(filepath.Join(tmp, "gone.json"), &[]vec{}), "fail", "gone.json"},
		{"non-empty list loads", "", "",
			func(tb testing.TB) {
				var v []vec
				Load(tb, file, &v)
				if len(v) != 1 || v[0].A != "00" {
					tb.Fatalf("loaded %v", v)
				}
			}, "pass", ""},
		{"non-empty object loads", "", "",
			loadInto(write("flat.json", `{"A":"01"}`), &flat{}), "pass", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(RequireEnv, tt.require)
			t.Setenv("SOTTO_TEST_VECTORS", tt.env)
			fb := run(t, tt.f)
			if fb.outcome != tt.outcome || !strings.Contains(fb.msg, tt.msg) {
				t.Errorf("outcome %s (%q), want %s with %q", fb.outcome, fb.msg, tt.outcome, tt.msg)
			}
		})
	}
}

// TestDir checks that the default directory is ../shared/vectors beside
// the repository root (two levels above this package).
func TestDir(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Dir(t), filepath.Join(filepath.Dir(root), "shared", "vectors"); got != want {
		t.Errorf("Dir = %s, want %s", got, want)
	}
}
