package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sottonet/sotto/host/keystore"
)

// run executes the sotto command line with args and returns what it wrote.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := rootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

const testGenesis = "2026-01-01T00:00:00Z"

// nodeConfig writes a mix config for dataDir and returns its path.
func nodeConfig(t *testing.T, dataDir, extra string) string {
	t.Helper()
	y := "role: mix\nnetwork: testnet\ndata_dir: " + dataDir + "\n" +
		"listen: [/ip4/127.0.0.1/tcp/0, /ip4/127.0.0.1/udp/0/quic-v1]\n" +
		"mix: {layer: 1}\n" +
		"epoch: {genesis: " + testGenesis + ", period: 24h, grace: 1h}\n" +
		"plugins:\n  pki: {builtin: pki-static, config: {operator_key: " + strings.Repeat("ab", 32) + ", network: testnet, dir: " + t.TempDir() + "}}\n" +
		"  storage: {builtin: storage-badger, config: {dir: " + dataDir + "/badger}}\n" +
		extra
	p := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// keyed returns a data directory that keygen has filled.
func keyed(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if _, stderr, err := run(t, "keygen", "--data-dir", dir, "--genesis", testGenesis, "--epoch-period", "24h", "--epoch-grace", "1h"); err != nil {
		t.Fatalf("keygen: %v\n%s", err, stderr)
	}
	return dir
}

func TestKeygenCreatesIdentityAndFourEpochsOfSphinxKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	out, _, err := run(t, "keygen", "--data-dir", dir, "--genesis", testGenesis, "--epoch-period", "24h", "--epoch-grace", "1h")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "identity created") || !strings.Contains(out, "peer ID: 12D3KooW") {
		t.Errorf("keygen said %q", out)
	}
	ks, err := keystore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	e := ks.Epochs()
	if len(e) != 4 || e[1] != e[0]+1 || e[3] != e[0]+3 {
		t.Errorf("Sphinx key epochs %v, want four consecutive", e)
	}
	out, _, err = run(t, "keygen", "--data-dir", dir, "--genesis", testGenesis, "--epoch-period", "24h", "--epoch-grace", "1h")
	if err != nil || !strings.Contains(out, "identity kept") {
		t.Errorf("second keygen: %v, said %q", err, out)
	}
}

func TestKeygenTakesTheDataDirAndClockFromTheConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, _, err := run(t, "keygen", "--config", nodeConfig(t, dir, "")); err != nil {
		t.Fatal(err)
	}
	ks, err := keystore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	if len(ks.Epochs()) != 4 {
		t.Errorf("epochs %v, want 4", ks.Epochs())
	}
}

func TestKeygenWithoutGenesisMakesOnlyTheIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	out, _, err := run(t, "keygen", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "no Sphinx keys") {
		t.Errorf("keygen said %q", out)
	}
	ks, err := keystore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	if len(ks.Epochs()) != 0 {
		t.Errorf("epochs %v, want none", ks.Epochs())
	}
}

func TestKeygenRefusesBadArguments(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no data directory is an error", []string{"keygen"}, "no data directory"},
		{"a malformed genesis is an error", []string{"keygen", "--data-dir", "DIR", "--genesis", "tomorrow"}, "--genesis"},
		{"a grace longer than the period is an error", []string{"keygen", "--data-dir", "DIR", "--genesis", testGenesis, "--epoch-grace", "48h", "--epoch-period", "24h"}, "grace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for i, a := range tt.args {
				if a == "DIR" {
					tt.args[i] = dir
				}
			}
			_, _, err := run(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestNodeCheck(t *testing.T) {
	tests := []struct {
		name    string
		extra   string            // appended to the config
		args    []string          // after node --check --config FILE
		env     map[string]string // set for the run
		spoil   func(dataDir string)
		noKeys  bool
		wantErr []string // problems printed; none means the check passes
	}{
		{name: "a valid config with keys passes"},
		{name: "a missing key directory is reported", noKeys: true, wantErr: []string{"no identity key"}},
		{name: "an identity readable by others is reported", spoil: func(d string) {
			os.Chmod(filepath.Join(keystore.Dir(d), "identity.key"), 0o644)
		}, wantErr: []string{"identity.key has mode 0644"}},
		{name: "a corrupt Sphinx key is reported", spoil: func(d string) {
			os.WriteFile(filepath.Join(keystore.Dir(d), "sphinx-1.key"), []byte("garbage"), 0o600)
		}, wantErr: []string{"sphinx-1.key", "corrupt"}},
		{name: "a flag overrides the file and is validated", args: []string{"--layer", "5"}, wantErr: []string{"mix.layer: is ignored (the PKI document deals layers), but must be 0..3"}},
		{name: "the environment overrides the file and is validated", env: map[string]string{"SOTTO_MIX__LAYER": "-1"}, wantErr: []string{"mix.layer"}},
		{name: "an unknown built-in plugin is reported", extra: "  accounting: {builtin: pay-nothing}\n", wantErr: []string{"plugins.accounting.builtin", "pay-nothing"}},
		{name: "every problem is printed at once", args: []string{"--role", "relay", "--network", ""}, env: map[string]string{"SOTTO_MIXING__QUEUE_CAPACITY": "0"},
			wantErr: []string{"role:", "network:", "mixing.queue_capacity:"}},
		{name: "a data directory without Sphinx keys is reported", spoil: func(d string) {
			entries, _ := os.ReadDir(keystore.Dir(d))
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "sphinx-") {
					os.Remove(filepath.Join(keystore.Dir(d), e.Name()))
				}
			}
		}, wantErr: []string{"no Sphinx key for the current epoch"}},
		{name: "a missing external plugin is reported", extra: "  accounting: {path: /nonexistent/sotto-pay}\n", wantErr: []string{"plugins.accounting.path", "no such file"}},
		{name: "an external plugin path that is a directory is reported", extra: "  accounting: {path: /}\n", wantErr: []string{"plugins.accounting.path", "not an executable"}},
		{name: "an unknown key is reported", extra: "mixnig: {}\n", wantErr: []string{"mixnig"}},
		// The issue's --check tests: plugins are started, and what they
		// refuse is reported by slot.
		{name: "a bad plugin config is reported naming the slot", extra: "  accounting: {builtin: test-accounting, config: {quota: 0}}\n",
			wantErr: []string{"plugins.accounting:", "quota must be at least 1"}},
		{name: "a bad plugin config from the environment is reported naming the slot", env: map[string]string{"SOTTO_PLUGINS__PKI__CONFIG__OPERATOR_KEY": "beef"},
			wantErr: []string{"plugins.pki:", "operator_key"}},
		{name: "a binary of the wrong kind is reported naming the slot", extra: "  accounting: {path: SELF, args: [plugin, storage-badger]}\n",
			wantErr: []string{"plugins.accounting:", "plugin handshake refused", "kind storage v1", `"accounting"`}},
		{name: "a pinned plugin whose binary differs is reported naming the slot", extra: "  accounting: {path: SELF, args: [plugin, test-accounting], sha256: " + strings.Repeat("ab", 32) + "}\n",
			wantErr: []string{"plugins.accounting:", "checksum mismatch", "refusing to start"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dir string
			if tt.noKeys {
				dir = filepath.Join(t.TempDir(), "empty")
			} else {
				dir = keyed(t)
			}
			if tt.spoil != nil {
				tt.spoil(dir)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			extra := strings.ReplaceAll(tt.extra, "SELF", os.Args[0])
			args := append([]string{"node", "--check", "--config", nodeConfig(t, dir, extra)}, tt.args...)
			out, stderr, err := run(t, args...)
			if len(tt.wantErr) == 0 {
				if err != nil || !strings.Contains(out, "config and keys OK: mix on network") {
					t.Fatalf("check failed: %v\n%s%s", err, out, stderr)
				}
				return
			}
			if err == nil {
				t.Fatalf("check passed, want problems %q; said %q", tt.wantErr, out)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not report %q", stderr, w)
				}
			}
		})
	}
}

func TestNodeRefusesABadLogLevel(t *testing.T) {
	dir := keyed(t)
	_, _, err := run(t, "node", "--config", nodeConfig(t, dir, ""), "--log-level", "loud")
	if err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("sotto node --log-level loud = %v, want an error naming the flag", err)
	}
}
