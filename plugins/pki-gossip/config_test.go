package pkigossip

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces"
)

func TestParseConfig(t *testing.T) {
	const params = `"params":{"Hops":3,"PayloadLen":2048,"Layers":3,"Mu":1,"LambdaP":1,"LambdaL":1,"LambdaD":1,"LambdaM":1}`
	const none = `"admission":{"policy":"none"},`
	root := ed25519.NewKeyFromSeed(make([]byte, 32))
	rootB64 := base64.StdEncoding.EncodeToString(root.Public().(ed25519.PublicKey))
	endorsement := Endorse(root, "n", make([]byte, 32), interfaces.RoleMix, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	ej, _ := endorsement.MarshalJSON()
	otherNet := Endorse(root, "other", make([]byte, 32), interfaces.RoleMix, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	oj, _ := otherNet.MarshalJSON()
	forged := endorsement
	forged.Signature = append([]byte{endorsement.Signature[0] ^ 1}, endorsement.Signature[1:]...)
	fj, _ := forged.MarshalJSON()
	endorsed := func(body string) string {
		return `{"network":"n",` + params + `,"admission":{"policy":"endorsed","endorsed":{` + body + `}}}`
	}
	tests := []struct {
		name string
		raw  string
		ok   bool
	}{
		{"a network, parameters and a policy are enough", `{"network":"n",` + none + params + `}`, true},
		{"a missing network is refused", `{` + none + params + `}`, false},
		{"missing parameters are refused", `{"network":"n",` + none[:len(none)-1] + `}`, false},
		{"a missing admission policy is refused", `{"network":"n",` + params + `}`, false},
		{"an unknown admission policy is refused", `{"network":"n","admission":{"policy":"stake"},` + params + `}`, false},
		{"a short identity seed is refused", `{"network":"n","identity_seed":"AAAA",` + none + params + `}`, false},
		{"a grace as long as the period is refused", `{"network":"n","epoch_period":1000000000,"grace":1000000000,` + none + params + `}`, false},
		{"params disagreeing with the epoch period are refused", `{"network":"n","epoch_period":1000000000,` + none + `"params":{"Hops":3,"PayloadLen":2048,"Layers":3,"EpochPeriod":5}}`, false},
		{"broken JSON is refused", `{"network":`, false},
		{"endorsed with a root and an endorsement is enough", endorsed(`"roots":["` + rootB64 + `"],"endorsements":[` + string(ej) + `]`), true},
		{"endorsed without roots is refused", endorsed(`"threshold":1`), false},
		{"endorsed with a threshold above the roots is refused", endorsed(`"roots":["` + rootB64 + `"],"threshold":2`), false},
		{"endorsed with a short root is refused", endorsed(`"roots":["AAAA"]`), false},
		{"endorsed with the same root twice is refused", endorsed(`"roots":["` + rootB64 + `","` + rootB64 + `"]`), false},
		{"an endorsement for another network is refused", endorsed(`"roots":["` + rootB64 + `"],"endorsements":[` + string(oj) + `]`), false},
		{"an endorsement by an untrusted root is refused", endorsed(`"roots":["` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"],"endorsements":[` + string(ej) + `]`), false},
		{"an endorsement with a broken signature is refused", endorsed(`"roots":["` + rootB64 + `"],"endorsements":[` + string(fj) + `]`), false},
		{"open with defaults is enough", `{"network":"n","admission":{"policy":"open"},` + params + `}`, true},
		{"open with a difficulty beyond 32 bits is refused", `{"network":"n","admission":{"policy":"open","open":{"difficulty":40}},` + params + `}`, false},
		{"open with a cap beyond a document is refused", `{"network":"n","admission":{"policy":"open","open":{"max_per_epoch":5000}},` + params + `}`, false},
		{"open with a negative rate is refused", `{"network":"n","admission":{"policy":"open","open":{"source_rate":-1}},` + params + `}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.raw))
			if (err == nil) != tt.ok {
				t.Fatalf("error = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (c.EpochPeriod != epoch.DefaultPeriod || c.Ahead != 2 || c.SyncInterval != 5*time.Second) {
				t.Fatalf("defaults not applied: %+v", c)
			}
			if tt.ok && c.Admission.Policy == "open" && c.Admission.Open != (OpenPolicy{DefaultOpenMemoryKiB, DefaultOpenPasses,
				DefaultOpenDifficulty, DefaultOpenMaxPerEpoch, DefaultOpenSourceRate, DefaultOpenSourceBurst}) {
				t.Fatalf("open defaults not applied: %+v", c.Admission.Open)
			}
			if tt.ok && c.Admission.Policy == "endorsed" && c.Admission.Endorsed.Threshold != 1 {
				t.Fatalf("threshold default not applied: %+v", c.Admission.Endorsed)
			}
			if !tt.ok && !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
		})
	}
}

func TestEndorsementSurvivesJSON(t *testing.T) {
	root := ed25519.NewKeyFromSeed(make([]byte, 32))
	e := Endorse(root, "n", root.Public().(ed25519.PublicKey), interfaces.RoleProvider, time.Now())
	b, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Endorsement
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if !strings.Contains(string(b), `"role":"provider"`) {
		t.Fatalf("role not written by name: %s", b)
	}
}

// Persistence is never silently off: state_dir is created 0700 if missing,
// and a member that cannot use it refuses to start, naming it.
func TestStateDirIsCreatedOrTheMemberRefusesToStart(t *testing.T) {
	cfg := testConfig(time.Now(), time.Minute)
	t.Run("a missing directory is created 0700, parents too", func(t *testing.T) {
		c := cfg
		c.StateDir = filepath.Join(t.TempDir(), "a", "pki")
		m, err := New(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		fi, err := os.Stat(c.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Fatalf("state_dir mode %v, want 0700", fi.Mode().Perm())
		}
		sd := newNode(1, interfaces.RoleMix).descriptor(t, "testnet", m.Clock().Now(), 0)
		if _, err := m.Publish(t.Context(), &interfaces.PublishRequest{Descriptor: sd}); err != nil {
			t.Fatal(err)
		}
		recs, err := loadRecords(c.StateDir)
		if err != nil || len(recs) != 1 {
			t.Fatalf("persisted %d records, err %v", len(recs), err)
		}
	})
	t.Run("a path under a file is refused", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		os.WriteFile(file, nil, 0o600)
		c := cfg
		c.StateDir = filepath.Join(file, "pki")
		_, err := New(t.Context(), c)
		if err == nil || !strings.Contains(err.Error(), c.StateDir) {
			t.Fatalf("error = %v, want one naming %s", err, c.StateDir)
		}
	})
	if os.Geteuid() != 0 { // root writes anywhere
		t.Run("a read-only directory is refused", func(t *testing.T) {
			dir := t.TempDir()
			os.Chmod(dir, 0o500)
			t.Cleanup(func() { os.Chmod(dir, 0o700) })
			c := cfg
			c.StateDir = dir
			if _, err := New(t.Context(), c); err == nil || !strings.Contains(err.Error(), "not writable") {
				t.Fatalf("error = %v, want not writable", err)
			}
		})
	}
}

// Through the plugin factory, a config without a clock takes the node's,
// and one that disagrees with the node's is refused.
func TestPluginTakesTheNodesClock(t *testing.T) {
	genesis := time.Now().Add(-90 * time.Second).Truncate(time.Second)
	clk, err := epoch.New(genesis, time.Minute, 6*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := interfaces.WithHost(t.Context(), &interfaces.Host{Slot: "pki", Clock: clk})
	build := func(extra string) (any, error) {
		raw := fmt.Sprintf(`{"network":"testnet","listen":["/ip4/127.0.0.1/tcp/0"],"admission":{"policy":"none"},%s"params":{"Hops":3,"PayloadLen":2048,"Layers":3,"EpochPeriod":%d}}`,
			extra, time.Minute)
		return Plugin().Factory(ctx, []byte(raw))
	}
	p, err := build("")
	if err != nil {
		t.Fatal(err)
	}
	m := p.(*Member)
	defer m.Close()
	if m.Clock().Genesis() != clk.Genesis() || m.Clock().Now() != clk.Now() {
		t.Fatalf("member clock %v/%d, node's %v/%d", m.Clock().Genesis(), m.Clock().Now(), clk.Genesis(), clk.Now())
	}
	if _, err := build(fmt.Sprintf(`"genesis":%q,"epoch_period":%d,`, genesis.Add(time.Second).Format(time.RFC3339), time.Minute)); !errors.Is(err, ErrConfig) {
		t.Fatalf("a clock disagreeing with the node's: error %v", err)
	}
}
