package plugin

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
)

// An external plugin is any executable named by path: build the example
// accounting plugin as its own binary and drive it through the host.
func TestExternalPluginByPath(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "accounting-free")
	build := exec.Command("go", "build", "-o", bin, "github.com/sottonet/sotto/examples/accounting-free/cmd/accounting-free")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// accounting-free keeps its counts in the host KV: offer it one.
	host := &interfaces.Host{KV: memkv.New()}
	p, err := Start(t.Context(), Config{Name: "pay", Kind: "accounting", Path: bin, RawConfig: []byte(`{"max_grant": 3}`)}, Options{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a := p.Accounting()
	r, err := a.Redeem(t.Context(), &interfaces.RedeemRequest{Epoch: 1, Credential: []byte("x"), Packets: 10})
	if err != nil || r.Granted != 3 {
		t.Fatalf("Redeem = %+v, %v; want 3 packets granted (the plugin's config)", r, err)
	}
	// The wrong slot: a storage host must refuse this accounting binary.
	_, err = Start(t.Context(), Config{Kind: "storage", Path: bin}, Options{})
	if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "accounting v1") || !strings.Contains(err.Error(), `"storage"`) {
		t.Fatalf("a storage slot given an accounting plugin: err = %v, want ErrHandshake naming both kinds", err)
	}
}
