package config

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// valid returns a config that passes Validate, for tests to break.
func valid(t *testing.T) Config {
	t.Helper()
	c, err := Load(Sources{File: "testdata/mix.yaml", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("testdata/mix.yaml does not validate: %v", err)
	}
	return c
}

func TestLoadReadsTheFileOverTheDefaults(t *testing.T) {
	c := valid(t)
	want := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	switch {
	case c.Role != RoleMix || c.Mix.Layer != 2 || c.Network != "testnet":
		t.Errorf("role/layer/network = %q/%d/%q", c.Role, c.Mix.Layer, c.Network)
	case !c.Epoch.Genesis.Equal(want) || c.Epoch.Period != 20*time.Minute || c.Epoch.Grace != 2*time.Minute:
		t.Errorf("epoch = %+v", c.Epoch)
	case len(c.Listen) != 2 || c.Listen[1] != "/ip4/127.0.0.1/udp/4100/quic-v1":
		t.Errorf("listen = %q", c.Listen)
	case c.Mixing.QueueCapacity != 1000 || c.Mixing.MaxDelay != 30*time.Second:
		t.Errorf("mixing = %+v", c.Mixing)
	case c.Mixing.UnwrapWorkers != runtime.GOMAXPROCS(0):
		t.Errorf("unwrap_workers default = %d, want GOMAXPROCS", c.Mixing.UnwrapWorkers)
	case c.Limits != Default().Limits:
		t.Errorf("limits = %+v, want the defaults", c.Limits)
	case c.Metrics.Listen != "127.0.0.1:9000":
		t.Errorf("metrics.listen = %q", c.Metrics.Listen)
	}
}

func TestPluginSlotsBecomeLoaderConfigs(t *testing.T) {
	c := valid(t)
	pki, err := c.Plugins.PKI.PluginConfig("pki")
	if err != nil {
		t.Fatal(err)
	}
	if pki.Builtin != "pki-gossip" || pki.Kind != "pki" || pki.Path != "" {
		t.Errorf("pki slot = %+v", pki)
	}
	var raw map[string]any
	if err := json.Unmarshal(pki.RawConfig, &raw); err != nil {
		t.Fatalf("raw config is not JSON: %v", err)
	}
	if raw["network"] != "testnet" {
		t.Errorf("raw config = %s", pki.RawConfig)
	}
	st, err := c.Plugins.Storage.PluginConfig("storage")
	if err != nil {
		t.Fatal(err)
	}
	if st.Path != "/usr/local/bin/sotto-storage" || len(st.Args) != 1 || !strings.Contains(string(st.RawConfig), "badger") {
		t.Errorf("storage slot = %+v", st)
	}
}

func TestPrecedenceIsFileThenEnvironmentThenFlags(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		flags   []string
		layer   int
		dataDir string
		listen  int
	}{
		{"the file alone sets the layer", nil, nil, 2, "/var/lib/sotto", 2},
		{"the environment overrides the file", []string{"SOTTO_MIX__LAYER=3", "SOTTO_DATA_DIR=/env"}, nil, 3, "/env", 2},
		{"flags override the environment", []string{"SOTTO_MIX__LAYER=3", "SOTTO_DATA_DIR=/env"}, []string{"--layer=1", "--data-dir=/flag"}, 1, "/flag", 2},
		{"unchanged flags leave the environment alone", []string{"SOTTO_MIX__LAYER=3"}, []string{"--network=testnet"}, 3, "/var/lib/sotto", 2},
		{"a comma-separated environment list replaces the file's", []string{"SOTTO_LISTEN=/ip4/127.0.0.1/tcp/1, /ip4/127.0.0.1/tcp/2,/ip4/127.0.0.1/tcp/3"}, nil, 2, "/var/lib/sotto", 3},
		{"a flag list replaces the environment's", []string{"SOTTO_LISTEN=/ip4/127.0.0.1/tcp/1"}, []string{"--listen=/ip4/127.0.0.1/tcp/5"}, 2, "/var/lib/sotto", 1},
		{"variables without the prefix are ignored", []string{"MIX__LAYER=1", "DATA_DIR=/x"}, nil, 2, "/var/lib/sotto", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("node", pflag.ContinueOnError)
			RegisterFlags(fs)
			if err := fs.Parse(tt.flags); err != nil {
				t.Fatal(err)
			}
			env := tt.env
			if env == nil {
				env = []string{}
			}
			c, err := Load(Sources{File: "testdata/mix.yaml", Environ: env, Flags: fs})
			if err != nil {
				t.Fatal(err)
			}
			if c.Mix.Layer != tt.layer || c.DataDir != tt.dataDir || len(c.Listen) != tt.listen {
				t.Errorf("layer %d, data_dir %q, listen %q; want %d, %q, %d addresses", c.Mix.Layer, c.DataDir, c.Listen, tt.layer, tt.dataDir, tt.listen)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestEnvironmentSetsNestedKeysAndTypes(t *testing.T) {
	c, err := Load(Sources{File: "testdata/mix.yaml", Environ: []string{
		"SOTTO_MIXING__UNWRAP_WORKERS=7",
		"SOTTO_MIXING__MAX_DELAY=1500ms",
		"SOTTO_NETWORK_FILE=", // no network file: the clock is the node config's
		"SOTTO_EPOCH__GENESIS=2027-02-03T04:05:06Z",
		"SOTTO_LIMITS__MAX_STREAMS_PER_PEER=9",
		"SOTTO_PLUGINS__STORAGE__ARGS=--a,--b",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Mixing.UnwrapWorkers != 7 || c.Mixing.MaxDelay != 1500*time.Millisecond || c.Limits.MaxStreamsPerPeer != 9 {
		t.Errorf("mixing %+v, limits %+v", c.Mixing, c.Limits)
	}
	if a := c.Plugins.Storage.Args; len(a) != 2 || a[1] != "--b" {
		t.Errorf("plugins.storage.args = %q, want [--a --b]", a)
	}
	if c.Epoch.Genesis.Year() != 2027 {
		t.Errorf("genesis = %v", c.Epoch.Genesis)
	}
}

func TestLoadRefusesBadInput(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  []string
		want string
	}{
		{"malformed YAML is refused", "role: [mix\n", nil, "yaml"},
		{"an unknown key is refused, so typos do not pass silently", "rol: mix\n", nil, "rol"},
		{"an unknown environment key is refused", "", []string{"SOTTO_MIX__LAYR=2"}, "layr"},
		{"a word where a number belongs is refused", "mix:\n  layer: two\n", nil, "layer"},
		{"a bad duration is refused", "epoch:\n  period: soon\n", nil, "period"},
		{"a bad genesis time is refused", "epoch:\n  genesis: yesterday\n", nil, "genesis"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "node.yaml")
			if err := os.WriteFile(f, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			env := tt.env
			if env == nil {
				env = []string{}
			}
			_, err := Load(Sources{File: f, Environ: env})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(strings.ToLower(err.Error()), tt.want) {
				t.Errorf("Load = %v, want an ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}

func TestLoadReportsAMissingFile(t *testing.T) {
	_, err := Load(Sources{File: filepath.Join(t.TempDir(), "absent.yaml"), Environ: []string{}})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load = %v, want ErrNotExist", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(*Config)
		want  []string // key paths that must be reported
	}{
		{"a mix in layer 4 is refused", func(c *Config) { c.Mix.Layer = 4 }, []string{"mix.layer"}},
		{"a provider with a layer is refused", func(c *Config) { c.Role = RoleProvider }, []string{"mix.layer: must be unset"}},
		{"an unknown role is refused", func(c *Config) { c.Role = "relay" }, []string{"role"}},
		{"a missing network is refused", func(c *Config) { c.Network = "" }, []string{"network"}},
		{"an overlong network name is refused", func(c *Config) { c.Network = strings.Repeat("n", 65) }, []string{"network"}},
		{"a missing data dir is refused", func(c *Config) { c.DataDir = "" }, []string{"data_dir"}},
		{"no listen address is refused", func(c *Config) { c.Listen = nil }, []string{"listen"}},
		{"a listen address that is not a multiaddr is refused", func(c *Config) { c.Listen[0] = "127.0.0.1:4100" }, []string{"listen[0]"}},
		{"a WebSocket listener on a mix is refused", func(c *Config) { c.Listen[1] = "/ip4/127.0.0.1/tcp/4103/ws" }, []string{"listen[1]: \"/ip4/127.0.0.1/tcp/4103/ws\": WebSocket"}},
		{"an unsupported transport is refused", func(c *Config) { c.Listen[0] = "/ip4/127.0.0.1/udp/4105/quic" }, []string{"listen[0]"}},
		{"a missing genesis is refused", func(c *Config) { c.Epoch.Genesis = time.Time{} }, []string{"epoch.genesis"}},
		{"a grace as long as the period is refused", func(c *Config) { c.Epoch.Grace = c.Epoch.Period }, []string{"epoch.grace"}},
		{"a zero period is refused", func(c *Config) { c.Epoch.Period = 0 }, []string{"epoch.period"}},
		{"a missing PKI plugin is refused", func(c *Config) { c.Plugins.PKI = PluginSlot{} }, []string{"plugins.pki: must name a plugin"}},
		{"a storage slot with both builtin and path is refused", func(c *Config) { c.Plugins.Storage.Builtin = "storage-badger" }, []string{"plugins.storage: set exactly one"}},
		{"accounting config without a plugin is refused", func(c *Config) { c.Plugins.Accounting.Config = map[string]any{"x": 1} }, []string{"plugins.accounting"}},
		{"a zero queue is refused", func(c *Config) { c.Mixing.QueueCapacity = 0 }, []string{"mixing.queue_capacity"}},
		{"zero unwrap workers are refused", func(c *Config) { c.Mixing.UnwrapWorkers = 0 }, []string{"mixing.unwrap_workers"}},
		{"a zero max delay is refused", func(c *Config) { c.Mixing.MaxDelay = 0 }, []string{"mixing.max_delay"}},
		{"more streams per peer than in total are refused", func(c *Config) { c.Limits.MaxStreams = 10; c.Limits.MaxStreamsPerPeer = 11 }, []string{"limits.max_streams_per_peer"}},
		{"a zero connection limit is refused", func(c *Config) { c.Limits.MaxConns = 0 }, []string{"limits.max_conns:"}},
		{"a metrics address without a port is refused", func(c *Config) { c.Metrics.Listen = "localhost" }, []string{"metrics.listen"}},
		{"a provider without a mailbox lifetime is refused", func(c *Config) {
			c.Role, c.Mix.Layer, c.Provider.MailboxLifetime = RoleProvider, 0, 0
		}, []string{"provider.mailbox_lifetime"}},
		{"negative client limits are refused", func(c *Config) {
			c.Role, c.Mix.Layer = RoleProvider, 0
			c.Provider.Clients.MaxStreamsPerIP, c.Provider.Clients.IdleTimeout = -1, -time.Second
		}, []string{"provider.clients.max_streams_per_ip", "provider.clients.idle_timeout"}},
		{"negative or infinite send rates and negative mailbox quotas are refused", func(c *Config) {
			c.Role, c.Mix.Layer = RoleProvider, 0
			c.Provider.Clients.SendRate, c.Provider.Clients.SendRatePerIP = -1, math.Inf(1)
			c.Provider.Clients.SendBurst, c.Provider.Clients.ReplyMBPerIP = -1, -1
			c.Provider.MailboxMaxMessages, c.Provider.MailboxMaxMB = -1, -1
		}, []string{"provider.clients.send_rate:", "provider.clients.send_rate_per_ip", "provider.clients.send_burst",
			"provider.clients.reply_mb_per_ip", "provider.mailbox_max_messages", "provider.mailbox_max_mb"}},
		{"every problem is reported at once", func(c *Config) {
			c.Role, c.Network, c.Mixing.QueueCapacity, c.Plugins.PKI = "", "", -1, PluginSlot{}
		}, []string{"role", "network", "mixing.queue_capacity", "plugins.pki"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid(t)
			tt.spoil(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to report %q", err, w)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(tt.want) {
				t.Errorf("Validate reported %d problems, want %d: %q", n, len(tt.want), err)
			}
		})
	}
}

func TestValidateAcceptsAProviderWithWebSocket(t *testing.T) {
	c := valid(t)
	c.Role, c.Mix.Layer = RoleProvider, 0
	c.Listen = append(c.Listen, "/ip4/0.0.0.0/tcp/4102/ws", "/dns4/example.org/tcp/4103")
	if err := c.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	seed, err := os.ReadFile("testdata/mix.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("role: provider\nlisten: /ip4/1.2.3.4/tcp/1/ws\n"))
	f.Add([]byte("mix: [1, 2]\nepoch: {period: -1h}\n"))
	f.Add([]byte("plugins:\n  pki:\n    config: {a: {b: [1, {c: d}]}}\n"))
	f.Add([]byte("plugins:\n  pki:\n    config: {1: 2, [x]: y}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		_ = c.Validate()
		for _, s := range []*PluginSlot{&c.Plugins.PKI, &c.Plugins.Storage, &c.Plugins.Accounting} {
			_, _ = s.PluginConfig("pki")
		}
	})
}

// A config that others may write names the binaries the node executes:
// Load refuses it and says how to fix it.
func TestLoadRefusesAConfigOthersMayWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode os.FileMode
		ok   bool
	}{
		{"owner-only", 0o600, true},
		{"readable by all", 0o644, true},
		{"group-writable", 0o664, false},
		{"world-writable", 0o646, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.yaml")
			if err := os.WriteFile(path, []byte("role: mix\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Load(Sources{File: path, Environ: []string{}})
			if tc.ok && err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !tc.ok && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "chmod go-w")) {
				t.Fatalf("Load = %v, want a refusal that says chmod go-w", err)
			}
		})
	}
}

// SOTTO_ variables that other parts of Sotto read (the vector switch CI
// sets, the plugin handshake) are not config keys and are not refused; a
// misspelt config variable still is.
func TestVariablesOfOtherPartsAreNotConfig(t *testing.T) {
	env := []string{"SOTTO_REQUIRE_VECTORS=1", "SOTTO_SPHINX_VECTORS=/x", "SOTTO_PLUGIN_KIND=sotto-plugin-pki", "SOTTO_TEST_LOG=1",
		"SOTTO_POSTGRES_DSN=postgres://u@127.0.0.1/db", "SOTTO_REQUIRE_POSTGRES=1"}
	if _, err := Load(Sources{File: "testdata/mix.yaml", Environ: env}); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if _, err := Load(Sources{File: "testdata/mix.yaml", Environ: append(env, "SOTTO_MIX__LAYR=2")}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a misspelt variable: err = %v, want ErrInvalid", err)
	}
}
