package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTheExampleNetworkFileSetsTheNodesClockAndPKI(t *testing.T) {
	c, err := Load(Sources{File: "testdata/example/mix.yaml", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Network != "testnet" || c.Epoch.Period != 20*time.Minute || c.Epoch.Grace != 2*time.Minute || c.Epoch.Genesis.Year() != 2026 {
		t.Errorf("network %q, epoch %+v", c.Network, c.Epoch)
	}
	pc := c.Plugins.PKI.Config
	adm, _ := pc["admission"].(map[string]any)
	end, _ := adm["endorsed"].(map[string]any)
	if pc["params"] == nil || pc["bootstrap"] == nil || adm["policy"] != "endorsed" || end["roots"] == nil || end["endorsements"] == nil {
		t.Errorf("pki config = %v", pc)
	}
	if p := c.NetworkFileContent().Params(); p.Validate() != nil || p.Hops != 3 || !p.Genesis.Equal(c.Epoch.Genesis) {
		t.Errorf("params %+v: %v", p, p.Validate())
	}
}

func TestANodeConfigThatContradictsTheNetworkFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	b, _ := os.ReadFile("testdata/example/network.yaml")
	os.WriteFile(filepath.Join(dir, "network.yaml"), b, 0o644)
	tests := []struct{ name, yaml, want string }{
		{"another network name", "network: other\n", "network: is \"other\" but the network file names \"testnet\""},
		{"another epoch period", "epoch: {period: 10m}\n", "epoch.period: differs from the network file's 20m0s"},
		{"another genesis", "epoch: {genesis: 2027-01-01T00:00:00Z}\n", "epoch.genesis: differs"},
		{"a missing network file", "network_file: nope.yaml\n", "network_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := "role: mix\nnetwork_file: network.yaml\ndata_dir: /d\nlisten: [/ip4/127.0.0.1/tcp/4100]\nplugins: {storage: {builtin: storage-badger}}\n" + tt.yaml
			p := filepath.Join(dir, "node.yaml")
			os.WriteFile(p, []byte(y), 0o600)
			_, err := Load(Sources{File: p, Environ: []string{}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNetworkFileProblemsNameTheirKeys(t *testing.T) {
	good, err := os.ReadFile("testdata/example/network.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseNetwork(good); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, from, to, want string }{
		{"a grace as long as the period", "grace: 2m0s", "grace: 20m", "grace: must be in [0, period 20m0s)"},
		{"zero hops", "hops: 3", "hops: 0", "geometry.hops: must be 1..255"},
		{"a negative rate", "mu: 2", "mu: -2", "rates.mu: must be a positive number"},
		{"an unknown key", "name:", "nmae: x\nname:", "nmae"},
		{"an unknown PKI", "plugin: pki-gossip", "plugin: pki-dht", "pki.plugin"},
		{"a bootstrap address without a peer ID", "/p2p/12D3KooW", "/tcp/1/x/", "pki.bootstrap[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(string(good), tt.from) {
				t.Fatalf("example has no %q", tt.from)
			}
			_, err := ParseNetwork([]byte(strings.Replace(string(good), tt.from, tt.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseNetwork = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestPortClashesAreRefused(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"a WebSocket on the gossip PKI's default port", func(c *Config) {
			c.Role, c.Listen = RoleProvider, append(c.Listen, "/ip4/0.0.0.0/tcp/4101/ws")
			delete(c.Plugins.PKI.Config, "listen")
		}, "plugins.pki.config.listen[0]: tcp port 4101 is already taken by listen[2]"},
		{"metrics on the node's port", func(c *Config) { c.Metrics.Listen = "0.0.0.0:4100" }, "metrics.listen: tcp port 4100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(Sources{File: "testdata/example/mix.yaml", Environ: []string{}})
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
	c, _ := Load(Sources{File: "testdata/example/mix.yaml", Environ: []string{}})
	c.Listen = []string{"/ip4/192.0.2.1/tcp/4100", "/ip4/192.0.2.9/tcp/4101"}
	if err := c.Validate(); err != nil {
		t.Errorf("one port on two addresses is refused: %v", err)
	}
}
