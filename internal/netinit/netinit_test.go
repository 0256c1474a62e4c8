package netinit

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sottonet/sotto/host/config"
)

var update = flag.Bool("update", false, "rewrite host/config/testdata/example from this code")

// exampleDir holds the example configs the README and docs/OPERATING.md
// point to. They are written by this package, so they are what runs.
const exampleDir = "../../host/config/testdata/example"

// exampleOptions is the example network: three mixes and two providers on
// documentation addresses (RFC 5737), made from a fixed seed.
func exampleOptions(out string) Options {
	seed := [32]byte{'s', 'o', 't', 't', 'o'}
	return Options{
		Hosts: []Host{
			{Name: "mix-1", Role: "mix", Address: "192.0.2.1"},
			{Name: "mix-2", Role: "mix", Address: "192.0.2.2"},
			{Name: "mix-3", Role: "mix", Address: "192.0.2.3"},
			{Name: "provider-1", Role: "provider", Address: "192.0.2.4"},
			{Name: "provider-2", Role: "provider", Address: "provider2.example.org"},
		},
		Network: config.Network{
			Name: "testnet", Genesis: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			Period: 20 * time.Minute, Grace: 2 * time.Minute,
			Geometry: config.Geometry{Hops: 3, Layers: 3, PayloadLen: 2048},
			Rates:    config.Rates{Mu: 2, LambdaP: 2, LambdaL: 1, LambdaD: 1, LambdaM: 1},
		},
		Out:  out,
		Now:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Rand: rand.NewChaCha8(seed),
	}
}

// exampleFiles maps the example's files to their names under exampleDir.
func exampleFiles(out string) map[string]string {
	return map[string]string{
		"network.yaml":      filepath.Join(out, "network.yaml"),
		"mix.yaml":          filepath.Join(out, "mix-1", "node.yaml"),
		"provider.yaml":     filepath.Join(out, "provider-1", "node.yaml"),
		"provider-dns.yaml": filepath.Join(out, "provider-2", "node.yaml"),
	}
}

func TestExamplesAreWhatThisCodeWrites(t *testing.T) {
	out := t.TempDir()
	if _, err := Write(exampleOptions(out)); err != nil {
		t.Fatal(err)
	}
	for name, path := range exampleFiles(out) {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(exampleDir, name)
		if *update {
			if err := os.WriteFile(dst, got, 0o600); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(dst)
		if err != nil {
			t.Fatalf("%v (run go test ./internal/netinit -run Examples -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what netinit writes; run go test ./internal/netinit -run Examples -update", dst)
		}
	}
}

func TestWriteRefusesBadHostsAndANonEmptyDirectory(t *testing.T) {
	tests := []struct {
		name  string
		hosts []Host
	}{
		{"a host without an address", []Host{{Name: "a", Role: "mix"}}},
		{"a host with a bad role", []Host{{Name: "a", Role: "gateway", Address: "10.0.0.1"}}},
		{"two hosts of one name", []Host{{Name: "a", Role: "mix", Address: "10.0.0.1"}, {Name: "a", Role: "mix", Address: "10.0.0.2"}}},
		{"a name with a slash", []Host{{Name: "a/b", Role: "mix", Address: "10.0.0.1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := exampleOptions(t.TempDir())
			o.Hosts = tt.hosts
			if _, err := Write(o); err == nil {
				t.Error("Write accepted it")
			}
		})
	}
	o := exampleOptions(t.TempDir())
	os.WriteFile(filepath.Join(o.Out, "x"), nil, 0o600)
	if _, err := Write(o); err == nil {
		t.Error("Write wrote into a non-empty directory")
	}
}

func TestWrittenKeysHaveTheRightModes(t *testing.T) {
	o := exampleOptions(t.TempDir())
	o.WriteKeys = true
	res, err := Write(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, nr := range res.Nodes {
		for path, want := range map[string]os.FileMode{
			nr.Config:                             0o600,
			filepath.Join(nr.Dir, "data", "keys"): 0o700 | os.ModeDir,
			filepath.Join(nr.Dir, "data", "keys", "identity.key"): 0o600,
		} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != want {
				t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
			}
		}
	}
	if fi, err := os.Stat(res.OperatorKey); err != nil || fi.Mode() != 0o600 {
		t.Errorf("operator key: %v %v", fi, err)
	}
}
