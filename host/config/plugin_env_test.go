package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// baseYAML is a valid provider config but for its accounting slot.
const baseYAML = "role: provider\nnetwork: n\ndata_dir: /d\nlisten: [/ip4/127.0.0.1/tcp/0]\n" +
	"epoch: {genesis: 2026-01-01T00:00:00Z}\nplugins:\n  pki: {builtin: pki-static, config: {network: n, operator_key: k, dir: /d/pki}}\n  storage: {builtin: storage-badger}\n"

// slotJSON loads a config whose accounting slot has a file config, with
// environ over it, and returns what the accounting plugin would receive.
func slotJSON(t *testing.T, environ ...string) (string, error) {
	t.Helper()
	y := baseYAML + "  accounting:\n    path: /bin/quota\n    config: {quota: 1, label: from-file, limits: {burst: 2}}\n"
	f := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(f, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(Sources{File: f, Environ: environ})
	if err != nil {
		return "", err
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	pc, err := c.Plugins.Accounting.PluginConfig("accounting")
	if err != nil {
		t.Fatal(err)
	}
	return string(pc.RawConfig), nil
}

// The environment test: a typed field of a plugin's config set
// from the environment reaches the plugin with its type, so a plugin that
// decodes JSON into a uint64 (refusing unknown keys) accepts it.
func TestAnEnvOverrideOfATypedConfigFieldWorks(t *testing.T) {
	raw, err := slotJSON(t, "SOTTO_PLUGINS__ACCOUNTING__CONFIG__QUOTA=3")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Quota  uint64 `json:"quota"`
		Label  string `json:"label"`
		Limits struct {
			Burst int `json:"burst"`
		} `json:"limits"`
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("the plugin cannot decode %s: %v", raw, err)
	}
	if cfg.Quota != 3 || cfg.Label != "from-file" || cfg.Limits.Burst != 2 {
		t.Errorf("the plugin got %+v from %s, want quota 3 over the file's other keys", cfg, raw)
	}
}

func TestPluginConfigFromTheEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ []string
		want    string // the JSON the plugin receives
	}{
		{"the file's config arrives as it is", nil, `{"label":"from-file","limits":{"burst":2},"quota":1}`},
		{"a number, a boolean and a quoted string keep their types", []string{
			"SOTTO_PLUGINS__ACCOUNTING__CONFIG__QUOTA=18446744073709551615",
			"SOTTO_PLUGINS__ACCOUNTING__CONFIG__STRICT=true",
			`SOTTO_PLUGINS__ACCOUNTING__CONFIG__LABEL="42"`,
		}, `{"label":"42","limits":{"burst":2},"quota":18446744073709551615,"strict":true}`},
		{"a value that is not JSON stays a string", []string{"SOTTO_PLUGINS__ACCOUNTING__CONFIG__LABEL=hello world"},
			`{"label":"hello world","limits":{"burst":2},"quota":1}`},
		{"nested keys take more double underscores", []string{"SOTTO_PLUGINS__ACCOUNTING__CONFIG__LIMITS__BURST=9"},
			`{"label":"from-file","limits":{"burst":9},"quota":1}`},
		{"a list is a JSON array", []string{`SOTTO_PLUGINS__ACCOUNTING__CONFIG__PEERS=["a", 2]`},
			`{"label":"from-file","limits":{"burst":2},"peers":["a",2],"quota":1}`},
		{"a whole JSON document replaces the file's config", []string{`SOTTO_PLUGINS__ACCOUNTING__CONFIG={"quota": 5, "Mixed_Case": {"x": 1.5}}`},
			`{"Mixed_Case":{"x":1.5},"quota":5}`},
		{"per-key variables apply over a document, in any order", []string{
			"SOTTO_PLUGINS__ACCOUNTING__CONFIG__QUOTA=7",
			`SOTTO_PLUGINS__ACCOUNTING__CONFIG={"quota": 5, "label": "env"}`,
		}, `{"label":"env","quota":7}`},
		{"an empty document resets the config to the plugin's defaults", []string{`SOTTO_PLUGINS__ACCOUNTING__CONFIG={}`}, ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := slotJSON(t, tc.environ...)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("the plugin receives %s, want %s", got, tc.want)
			}
		})
	}
}

func TestAMalformedPluginConfigDocumentIsRefused(t *testing.T) {
	for _, v := range []string{`{"quota": `, `[1, 2]`, `3`, `null`, `{} {}`} {
		_, err := slotJSON(t, "SOTTO_PLUGINS__ACCOUNTING__CONFIG="+v)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "SOTTO_PLUGINS__ACCOUNTING__CONFIG") || !strings.Contains(err.Error(), "JSON object") {
			t.Errorf("config document %s: err = %v, want ErrInvalid naming the variable", v, err)
		}
	}
}

func TestPinAndReattachAreValidated(t *testing.T) {
	good := strings.Repeat("0a", 32)
	for _, tc := range []struct {
		name    string
		environ []string
		want    string // a problem Validate reports; "" for none
	}{
		{"a pin on an external plugin is fine", []string{"SOTTO_PLUGINS__ACCOUNTING__SHA256=" + good}, ""},
		{"a pin that is not a SHA-256 is refused", []string{"SOTTO_PLUGINS__ACCOUNTING__SHA256=abc"}, "plugins.accounting.sha256"},
		{"a pin on a built-in is refused", []string{"SOTTO_PLUGINS__STORAGE__SHA256=" + good}, "plugins.storage.sha256"},
		{"a reattach config from the environment is fine", []string{`SOTTO_PLUGINS__ACCOUNTING__REATTACH={"kind":"accounting","network":"unix","addr":"/tmp/x","pid":1}`}, ""},
		{"a reattach config that is not JSON is refused", []string{"SOTTO_PLUGINS__ACCOUNTING__REATTACH=pid 12"}, "plugins.accounting.reattach"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "node.yaml")
			y := baseYAML + "  accounting: {path: /bin/quota}\n"
			if err := os.WriteFile(f, []byte(y), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(Sources{File: f, Environ: tc.environ})
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate = %v, want no problem", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate = %v, want a problem at %s", err, tc.want)
			}
			if tc.want == "" {
				pc, _ := c.Plugins.Accounting.PluginConfig("accounting")
				if pc.SHA256 != c.Plugins.Accounting.SHA256 || pc.Reattach != c.Plugins.Accounting.Reattach {
					t.Errorf("PluginConfig drops the pin or reattach config: %+v", pc)
				}
			}
		})
	}
}
