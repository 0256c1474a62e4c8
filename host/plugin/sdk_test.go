package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sottonet/sotto/interfaces"
)

// eventually polls cond for up to 20 s (plugins log asynchronously, and
// the machine may be busy).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The logging test: a plugin's slog.Warn is a WARN line in the
// node's log (whose default level is INFO), tagged with the slot, with its
// fields; its DEBUG lines are dropped at that level, not promoted.
func TestAPluginWarnAppearsAtTheNodesDefaultLevelWithItsSlot(t *testing.T) {
	logs := &syncBuffer{}
	p, err := Start(t.Context(), Config{Name: "store", Kind: "storage", Builtin: "test-logs", RawConfig: badgerConfig(t, t.TempDir())}, Options{
		Logger: slog.New(slog.NewTextHandler(logs, nil)), // slog's default level: INFO, as a node's
		Self:   os.Args[0],
		Env:    []string{modeEnv + "=logs"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	line := func(msg string) string {
		for l := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(l, msg) {
				return l
			}
		}
		return ""
	}
	eventually(t, "the plugin's warning in the host's log", func() bool { return line("quota low") != "" && line("std log line") != "" })
	warn := line("quota low")
	for _, want := range []string{"level=WARN", `msg="quota low"`, "slot=store", "left=3"} {
		if !strings.Contains(warn, want) {
			t.Errorf("the plugin's warning was logged as %q, want %s in it", warn, want)
		}
	}
	if l := line("ready to store"); !strings.Contains(l, "level=INFO") || !strings.Contains(l, "slot=store") {
		t.Errorf("the plugin's info line was logged as %q, want level=INFO and its slot", l)
	}
	if l := line("std log line"); !strings.Contains(l, "level=INFO") {
		t.Errorf("a log.Printf line was logged as %q, want level=INFO", l)
	}
	if l := line("debug detail"); l != "" {
		t.Errorf("a plugin DEBUG line reached an INFO log: %q", l)
	}
	if strings.Contains(warn, "timestamp=") {
		t.Errorf("the relayed line carries the plugin's timestamp as a field: %q", warn)
	}
}

// A plugin reports its name and version when configured: the host keeps
// them (Info), logs them at start and exports them as sotto_plugin_info.
func TestAPluginReportsItsNameAndVersion(t *testing.T) {
	p, h, err := start(t, "logs", badgerConfig(t, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	info := p.Info()
	if info.Name != "test-store" || info.Version != "v9.9.9" || info.Kind != "storage" || info.ProtocolVersion != 1 {
		t.Errorf("Info() = %+v, want test-store v9.9.9 serving storage v1", info)
	}
	if l := h.log.String(); !strings.Contains(l, `msg="plugin started"`) || !strings.Contains(l, "version=v9.9.9") {
		t.Errorf("the start was not logged with the version:\n%s", l)
	}
	if v := gauge(t, h.reg, "sotto_plugin_info", map[string]string{"plugin": "store", "name": "test-store", "version": "v9.9.9"}); v != 1 {
		t.Errorf("sotto_plugin_info{name=test-store,version=v9.9.9} = %v, want 1", v)
	}
	// A plugin that reports no name is named after its built-in name.
	p2, _, err := start(t, "badger", badgerConfig(t, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := p2.Info().Name; n != "test-badger" {
		t.Errorf("an unnamed plugin's Info().Name = %q, want its built-in name", n)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// A slot may pin its executable's SHA-256: the right sum starts it, any
// other is refused before the process runs, naming both sums.
func TestAPinnedChecksumIsEnforced(t *testing.T) {
	self := os.Args[0]
	sum := fileSHA256(t, self)
	startPinned := func(pin string) (*Plugin, error) {
		p, err := Start(t.Context(), Config{Name: "store", Kind: "storage", Path: self, SHA256: pin, RawConfig: badgerConfig(t, t.TempDir())},
			Options{Logger: slog.New(slog.DiscardHandler), Env: []string{modeEnv + "=badger"}})
		if err == nil {
			t.Cleanup(func() { _ = p.Close() })
		}
		return p, err
	}
	if _, err := startPinned(strings.ToUpper(sum)); err != nil {
		t.Fatalf("the executable's own sum (in capitals) was refused: %v", err)
	}
	wrong := strings.Repeat("ab", 32)
	_, err := startPinned(wrong)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), sum) || !strings.Contains(err.Error(), wrong) {
		t.Fatalf("a wrong pin: err = %v, want ErrChecksum naming both sums", err)
	}
	if _, err := startPinned("not-hex"); !errors.Is(err, ErrConfig) {
		t.Errorf("a malformed pin: err = %v, want ErrConfig", err)
	}
	_, err = Start(t.Context(), Config{Kind: "storage", Builtin: "x", SHA256: sum}, Options{})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "path") {
		t.Errorf("a pin on a built-in: err = %v, want ErrConfig saying pins are for paths", err)
	}
}

var reattachLine = regexp.MustCompile(`SOTTO_PLUGINS__STORAGE__REATTACH='([^']+)'`)

// Debugging: a plugin started by hand with SOTTO_PLUGIN_DEBUG=1 (as under
// a debugger) prints its reattach config; a slot given it attaches to
// that process instead of starting one, and stopping the host stops it.
func TestAHostReattachesToAPluginInDebugMode(t *testing.T) {
	out := &syncBuffer{}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), modeEnv+"=badger", interfaces.DebugEnv+"=1")
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	eventually(t, "the debug-mode plugin's reattach line", func() bool { return reattachLine.MatchString(out.String()) })
	js := reattachLine.FindStringSubmatch(out.String())[1]

	logs := &syncBuffer{}
	p, err := Start(t.Context(), Config{Name: "store", Kind: "storage", Reattach: js, RawConfig: badgerConfig(t, t.TempDir())},
		Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatalf("reattach to %s: %v", js, err)
	}
	if p.Pid() != cmd.Process.Pid {
		t.Errorf("Pid() = %d, want the debug-mode process %d", p.Pid(), cmd.Process.Pid)
	}
	s := p.Storage()
	if _, err := s.KVPut(t.Context(), &interfaces.KVPutRequest{Namespace: "n", Entries: []interfaces.KVEntry{{Key: []byte("k"), Value: []byte("v")}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.KVGet(t.Context(), &interfaces.KVGetRequest{Namespace: "n", Keys: [][]byte{[]byte("k")}}); err != nil || len(r.Values) != 1 || string(r.Values[0]) != "v" {
		t.Fatalf("KVGet = %+v, %v", r, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		exited <- nil // for the deferred wait
	case <-time.After(20 * time.Second):
		t.Fatal("the debug-mode plugin still runs after the host closed it")
	}

	// A reattach config of another kind is refused before any connection.
	_, err = Start(t.Context(), Config{Kind: "accounting", Reattach: js}, Options{})
	if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), `"storage"`) {
		t.Errorf("reattaching an accounting slot to a storage plugin: err = %v, want ErrHandshake naming the kinds", err)
	}
	if _, err := Start(t.Context(), Config{Kind: "storage", Reattach: "{"}, Options{}); !errors.Is(err, ErrConfig) {
		t.Errorf("a malformed reattach config: err = %v, want ErrConfig", err)
	}
}
