// Package accountingpython_test runs the accounting conformance suite
// against main.py, a Sotto plugin written in Python, started as a real
// process the way a node starts a plugin (plugintest.Process). The Python
// stubs are generated into a temporary directory by protoc; nothing
// generated is committed.
package accountingpython_test

import (
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/accountingtest"
	"github.com/sottonet/sotto/interfaces/plugintest"
)

// The runtime the example needs; CI installs it (.ci/run).
const install = "apt-get install -y python3-grpcio python3-protobuf protobuf-compiler"

// runtime finds a python3 that has grpc and protobuf, and protoc. Missing,
// they skip the test on a developer's machine and fail it in CI.
func runtime(t *testing.T) (python, protoc string) {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing, and CI must run the Python example: %s", what, install)
		}
		t.Skipf("%s is missing; to run the Python plugin's conformance suite: %s", what, install)
	}
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		missing("protoc")
	}
	// Debian's packages install into the system python3, which a python3
	// earlier on PATH (pyenv, a virtualenv) may not see.
	for _, cand := range []string{"python3", "/usr/bin/python3"} {
		if p, err := exec.LookPath(cand); err == nil && exec.Command(p, "-c", "import grpc, google.protobuf").Run() == nil {
			return p, protoc
		}
	}
	missing("a python3 with the grpc and protobuf modules")
	return "", ""
}

// stubs generates the Python code of the protos main.py imports.
func stubs(t *testing.T, protoc string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(protoc, "-I", "../../interfaces/proto", "-I", "proto", "--python_out", dir,
		"plugin/v1/plugin.proto", "accounting/v1/accounting.proto", "wire.proto")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, out)
	}
	return dir
}

func TestConformanceAsAPythonProcess(t *testing.T) {
	python, protoc := runtime(t)
	env := append(os.Environ(), "PYTHONPATH="+stubs(t, protoc), "PYTHONDONTWRITEBYTECODE=1")
	script, err := filepath.Abs("main.py")
	if err != nil {
		t.Fatal(err)
	}
	start := func(t *testing.T, raw string) (any, error) {
		cmd := exec.Command(python, script)
		cmd.Env = env
		return plugintest.StartProcess(t, interfaces.AccountingKind, cmd, []byte(raw))
	}
	accountingtest.Run(t, func(t *testing.T) interfaces.Accounting {
		v, err := start(t, `{"quota": 20}`)
		if err != nil {
			t.Fatal(err)
		}
		return v.(interfaces.Accounting)
	}, accountingtest.Options{
		Credential: func(t *testing.T, a interfaces.Accounting) []byte {
			r, err := a.Issue(t.Context(), &interfaces.IssueRequest{Epoch: 1})
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			return r.Response
		},
		Cap: 20,
		Forged: func(*testing.T) []byte {
			b := make([]byte, 16)
			rand.Read(b)
			return b
		},
	})

	t.Run("a bad config is refused with ErrInvalidArgument", func(t *testing.T) {
		for _, raw := range []string{`{"quota": 0}`, `{"qouta": 3}`, `{`} {
			if _, err := start(t, raw); !errors.Is(err, interfaces.ErrInvalidArgument) || !strings.Contains(err.Error(), "accounting-python config") {
				t.Errorf("config %s: err = %v, want ErrInvalidArgument from the plugin", raw, err)
			}
		}
	})
	t.Run("it reports its name and version", func(t *testing.T) {
		v, err := start(t, "")
		if err != nil {
			t.Fatal(err)
		}
		if info := v.(interfaces.Reporter).Reported(); info.Name != "accounting-python" || info.Version == "" || info.Kind != "accounting" {
			t.Errorf("Reported() = %+v", info)
		}
	})
	t.Run("a host of another kind is refused", func(t *testing.T) {
		cmd := exec.Command(python, script)
		cmd.Env = env
		_, err := plugintest.StartProcess(t, interfaces.StorageKind, cmd, nil)
		if err == nil {
			t.Fatal("the Python accounting plugin started in a storage slot")
		}
	})
}
