package client

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The client is linked into the browser build and into applications: it
// must stay free of the host's plugin machinery, of Badger and of
// go-libp2p (client/p2p carries the libp2p transport, apart). Test files
// are not counted.
func TestClientAvoidsHostDependencies(t *testing.T) {
	for _, env := range [][]string{nil, {"GOOS=js", "GOARCH=wasm"}} {
		cmd := exec.Command("go", "list", "-deps", ".")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %v: %v", env, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list %v saw only %d packages", env, len(deps))
		}
		for _, d := range deps {
			for _, bad := range []string{"github.com/hashicorp/go-plugin", "github.com/dgraph-io/badger", "github.com/libp2p/"} {
				if strings.HasPrefix(d, bad) {
					t.Errorf("%v: package client depends on %s", env, d)
				}
			}
		}
	}
}

func TestClientBuildsForWasm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the client packages for js/wasm")
	}
	// ./... from here is ./client/...: client/p2p must build too (empty).
	cmd := exec.Command("go", "build", "./...")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=js GOARCH=wasm go build: %v\n%s", err, out)
	}
}
