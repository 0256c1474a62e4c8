package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sottonet/sotto/internal/localnet"
)

// exampleDir holds the example configs, written by internal/netinit (the
// code behind `sotto network init`).
const exampleDir = "../../host/config/testdata/example"

var exampleConfigs = []string{"mix.yaml", "provider.yaml", "provider-dns.yaml"}

// runnableExample copies an example config and the network file into a
// temp dir, moved to loopback on free ports with its data in temp dirs,
// and makes its keys: what an operator's host is, on 127.0.0.1.
func runnableExample(t *testing.T, name string) (cfg string) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	b, err := os.ReadFile(filepath.Join(exampleDir, name))
	if err != nil {
		t.Fatal(err)
	}
	y := string(b)
	y = regexp.MustCompile(`/ip4/192\.0\.2\.\d+`).ReplaceAllString(y, "/ip4/127.0.0.1")
	y = strings.ReplaceAll(y, "/ip4/0.0.0.0", "/ip4/127.0.0.1")
	y = strings.ReplaceAll(y, "/var/lib/sotto", data)
	for _, port := range []string{"4100", "4101", "4102", "9464"} {
		p, err := localnet.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		y = strings.ReplaceAll(y, "/"+port, fmt.Sprintf("/%d", p))
		y = strings.ReplaceAll(y, ":"+port, fmt.Sprintf(":%d", p))
	}
	cfg = filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	nb, err := os.ReadFile(filepath.Join(exampleDir, "network.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "network.yaml"), nb, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := run(t, "keygen", "--config", cfg); err != nil {
		t.Fatalf("keygen: %v\n%s", err, stderr)
	}
	return cfg
}

// Every example config passes the whole check, its plugins started (what
// would have caught pki-gossip's "zero hops").
func TestExampleConfigsPassTheCheck(t *testing.T) {
	for _, name := range exampleConfigs {
		t.Run(name, func(t *testing.T) {
			out, stderr, err := run(t, "node", "--check", "--config", runnableExample(t, name))
			if err != nil {
				t.Fatalf("check failed: %v\n%s", err, stderr)
			}
			for _, want := range []string{"config and keys OK", "plugins.pki: pki plugin pki-gossip started", "plugins.storage: storage plugin storage-badger started"} {
				if !strings.Contains(out, want) {
					t.Errorf("the check said %q, want %q in it", out, want)
				}
			}
		})
	}
}

// Each example made incomplete (one top-level key removed, or one of the
// network file's) fails the check, naming the field.
func TestIncompleteExampleConfigsFailTheCheckNamingTheField(t *testing.T) {
	nodeKeys := map[string][]string{
		"role":         {"role:"},
		"network_file": {"network:", "epoch.genesis:", "plugins.pki.config.params:"},
		"data_dir":     {"data_dir:"},
		"listen":       {"listen:"},
		"plugins":      {"plugins.storage:"}, // the network file names the PKI
	}
	netKeys := map[string][]string{
		"name": {"name:"}, "genesis": {"genesis:"}, "period": {"period:"},
		"geometry": {"geometry.hops:", "geometry.layers:", "geometry.payload_len:"},
		"rates":    {"rates.mu:", "rates.lambda_p:"},
		"pki":      {"pki.roots:"},
	}
	for _, name := range exampleConfigs {
		for key, want := range nodeKeys {
			t.Run(name+" without "+key, func(t *testing.T) {
				cfg := runnableExample(t, name)
				dropKey(t, cfg, key)
				checkFails(t, cfg, want)
			})
		}
	}
	for key, want := range netKeys {
		t.Run("network.yaml without "+key, func(t *testing.T) {
			cfg := runnableExample(t, "mix.yaml")
			dropKey(t, filepath.Join(filepath.Dir(cfg), "network.yaml"), key)
			checkFails(t, cfg, want)
		})
	}
}

// dropKey removes a top-level YAML key and its indented block from a file.
func dropKey(t *testing.T, path, key string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	skipping, found := false, false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key+":") {
			skipping, found = true, true
			continue
		}
		if skipping && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "-")) {
			continue
		}
		skipping = false
		out = append(out, line)
	}
	if !found {
		t.Fatalf("%s has no key %q", path, key)
	}
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

func checkFails(t *testing.T, cfg string, want []string) {
	t.Helper()
	out, stderr, err := run(t, "node", "--check", "--config", cfg)
	if err == nil {
		t.Fatalf("check passed: %s", out)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q does not name %q", stderr, w)
		}
	}
}

// node addrs prints the node's full multiaddrs and its PKI bootstrap
// address, whose peer ID is the one derived from the node's keystore.
func TestNodeAddrsPrintsTheBootstrapAddress(t *testing.T) {
	cfg := runnableExample(t, "provider.yaml")
	out, stderr, err := run(t, "node", "addrs", "--config", cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[3], "pki   /ip4/127.0.0.1/tcp/") {
		t.Fatalf("node addrs printed:\n%s", out)
	}
	for _, l := range lines[:3] {
		if !strings.HasPrefix(l, "node  /ip4/127.0.0.1/") || !strings.Contains(l, "/p2p/12D3KooW") {
			t.Errorf("node line %q", l)
		}
	}
	nodeID := lines[0][strings.LastIndex(lines[0], "/")+1:]
	pkiID := lines[3][strings.LastIndex(lines[3], "/")+1:]
	if nodeID == pkiID || !strings.HasPrefix(pkiID, "12D3KooW") {
		t.Errorf("node %s, pki %s: want two different peer IDs", nodeID, pkiID)
	}
}
