package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The scaffold test: `sotto plugin new accounting demo-quota`
// writes a module that passes its own tests (the conformance suite in
// process, over gRPC, through Configure and as its real binary) against
// this checkout.
func TestPluginNewWritesAModuleThatPassesItsConformanceSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests a new module")
	}
	dir := filepath.Join(t.TempDir(), "demo-quota")
	out, stderr, err := run(t, "plugin", "new", "accounting", "demo-quota", "--dir", dir, "--sotto-path", "../..")
	if err != nil {
		t.Fatalf("plugin new: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "wrote the accounting plugin demo-quota") {
		t.Errorf("plugin new said %q", out)
	}
	for _, f := range []string{"go.mod", "go.sum", "README.md", "demoquota.go", "demoquota_test.go", "cmd/demo-quota/main.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the module lacks %s: %v", f, err)
		}
	}
	test := exec.Command("go", "test", "-count=1", "./...")
	test.Dir = dir
	// Offline: the module cache holds every module Sotto's go.sum names.
	test.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOPROXY=off")
	b, err := test.CombinedOutput()
	if err != nil {
		t.Fatalf("go test ./... in the new module: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "ok  \texample.com/demo-quota") {
		t.Errorf("go test ./... said:\n%s", b)
	}
}

func TestPluginNewRefusesBadArguments(t *testing.T) {
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), nil, 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an unknown kind is refused, naming the kinds it has", []string{"gossip", "x"}, "have: accounting"},
		{"a name that is no package name is refused", []string{"accounting", "Demo Quota"}, "lower-case"},
		{"a directory with files in it is refused", []string{"accounting", "demo", "--dir", full}, "not empty"},
		{"a sotto path that is no checkout is refused", []string{"accounting", "demo", "--dir", filepath.Join(t.TempDir(), "d"), "--sotto-path", t.TempDir()}, "--sotto-path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, append([]string{"plugin", "new"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
