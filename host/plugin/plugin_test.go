package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/storagetest"
)

// syncBuffer is a log sink tests read while plugins write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	log *syncBuffer
	reg *prometheus.Registry
}

func start(t *testing.T, mode string, raw []byte, tweak func(*Config)) (*Plugin, *harness, error) {
	t.Helper()
	h := &harness{log: &syncBuffer{}, reg: prometheus.NewRegistry()}
	cfg := Config{Name: "store", Kind: "storage", Builtin: "test-" + mode, RawConfig: raw, StartTimeout: 10 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := Start(t.Context(), cfg, Options{
		Logger:     slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: h.reg,
		Self:       os.Args[0],
		Env:        []string{modeEnv + "=" + mode},
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
	})
	if err == nil {
		t.Cleanup(func() { _ = p.Close() })
	}
	return p, h, err
}

func TestStorageConformanceOutOfProcess(t *testing.T) {
	var (
		mu    sync.Mutex
		procs = map[interfaces.Storage]*Plugin{}
		dirs  = map[interfaces.Storage]string{}
	)
	open := func(t *testing.T, dir string) interfaces.Storage {
		p, _, err := start(t, "badger", badgerConfig(t, dir), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := p.Storage()
		mu.Lock()
		procs[s], dirs[s] = p, dir
		mu.Unlock()
		return s
	}
	storagetest.Run(t, func(t *testing.T) interfaces.Storage { return open(t, t.TempDir()) }, storagetest.Options{
		// A restart is the plugin process stopping and starting again on
		// the same Badger directory.
		Reopen: func(t *testing.T, s interfaces.Storage) interfaces.Storage {
			mu.Lock()
			p, dir := procs[s], dirs[s]
			mu.Unlock()
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, dir)
		},
	})
}

func TestBadConfigIsRefusedAtStart(t *testing.T) {
	_, _, err := start(t, "badger", []byte(`{"dir": "", "bogus": 1}`), nil)
	if !errors.Is(err, interfaces.ErrInvalidArgument) {
		t.Fatalf("err = %v, want ErrInvalidArgument", err)
	}
}

func TestMisbehavingPluginsGiveClearErrors(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		want       []string
	}{
		{"a plugin of another protocol version is refused, naming both", "version2", []string{"storage v1", "Plugin version: 2"}},
		{"a plugin of another kind is refused, naming both", "other-kind", []string{"accounting v1", `"storage"`}},
		{"a plugin that answers garbage to the handshake is refused", "garbage-handshake", []string{`"HELLO"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := start(t, tc.mode, badgerConfig(t, t.TempDir()), nil)
			if !errors.Is(err, ErrHandshake) {
				t.Fatalf("err = %v, want ErrHandshake", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestGarbageRepliesAreErrorsNotPanics(t *testing.T) {
	p, _, err := start(t, "bad-replies", badgerConfig(t, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Storage().AppendMailbox(t.Context(), &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{
		{Payload: []byte("x"), Lifetime: time.Hour},
	}})
	if !errors.Is(err, interfaces.ErrMalformedReply) {
		t.Fatalf("err = %v, want ErrMalformedReply", err)
	}
}

func TestHangingPluginFailsAtTheDeadline(t *testing.T) {
	p, _, err := start(t, "hang", badgerConfig(t, t.TempDir()), func(c *Config) { c.CallTimeout = 300 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Storage().InsertReplayTags(t.Context(), &interfaces.InsertReplayTagsRequest{Epoch: 1, Tags: make([]interfaces.ReplayTag, 1)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	// The plugin is alive, only slow: other calls still work.
	if _, err := p.Storage().KVPut(t.Context(), &interfaces.KVPutRequest{Namespace: "n", Entries: []interfaces.KVEntry{{Key: []byte("k")}}}); err != nil {
		t.Fatalf("after a hung call: %v", err)
	}
}

// The crash test: SIGKILL the storage plugin in the middle of a
// stream of acknowledged appends; after the host restarts it, every
// acknowledged append is there, intact, and the death was logged and
// counted.
func TestCrashKeepsAcknowledgedAppends(t *testing.T) {
	dir := t.TempDir()
	p, h, err := start(t, "badger", badgerConfig(t, dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Storage()
	var box interfaces.MailboxID
	copy(box[:], "crash test mailbox")
	acked := map[uint64][]byte{}
	var failed int
	killed := false
	for i := 0; i < 300 || !killed; i++ {
		payload := []byte(fmt.Sprintf("message %04d %s", i, strings.Repeat("x", i%200)))
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		resp, err := s.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{{Mailbox: box, Payload: payload, Lifetime: time.Hour}}})
		cancel()
		switch {
		case err == nil:
			acked[resp.IDs[0]] = payload
		case errors.Is(err, interfaces.ErrUnavailable):
			failed++
			if err := p.WaitReady(t.Context()); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("append %d: unexpected error %v", i, err)
		}
		if i == 100 {
			pid := p.Pid()
			if pid == 0 {
				t.Fatal("no plugin process to kill")
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	if err := p.WaitReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	resp, err := s.FetchMailbox(t.Context(), &interfaces.FetchMailboxRequest{Mailbox: box, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64][]byte{}
	for _, e := range resp.Entries {
		got[e.ID] = e.Payload
	}
	for id, want := range acked {
		if !bytes.Equal(got[id], want) {
			t.Errorf("acknowledged message %d = %q after the crash, want %q", id, got[id], want)
		}
	}
	for id, payload := range got {
		if _, ok := acked[id]; !ok && !bytes.HasPrefix(payload, []byte("message ")) {
			t.Errorf("unacknowledged message %d is corrupt: %q", id, payload)
		}
	}
	t.Logf("%d appends acknowledged, %d failed while the plugin was down, %d stored", len(acked), failed, len(got))
	if n := counter(t, metricsOf(h.reg).restarts.WithLabelValues("store")); n < 1 {
		t.Errorf("restart counter = %v, want at least 1", n)
	}
	if n := counter(t, metricsOf(h.reg).crashes.WithLabelValues("store")); n < 1 {
		t.Errorf("crash counter = %v, want at least 1", n)
	}
	if !strings.Contains(h.log.String(), "plugin process died") {
		t.Error("the host did not log the plugin's death")
	}
}

func TestCallsAfterCloseFail(t *testing.T) {
	p, _, err := start(t, "badger", badgerConfig(t, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	if !slices.Contains(childProcesses(), pid) {
		t.Fatalf("plugin process %d is not among our children %v", pid, childProcesses())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(childProcesses(), pid) {
		t.Errorf("plugin process %d outlived Close", pid)
	}
	_, err = p.Storage().KVGet(t.Context(), &interfaces.KVGetRequest{Namespace: "n"})
	if !errors.Is(err, ErrClosed) || !errors.Is(err, interfaces.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrClosed wrapping ErrUnavailable", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("plugin process %d outlived Close", pid)
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// Close must not wait for a restart stuck in the handshake (go-plugin's
// handshake has no context; Close kills the process instead), and the
// stuck process must not outlive it.
func TestCloseDuringAHungRestart(t *testing.T) {
	h := &harness{log: &syncBuffer{}, reg: prometheus.NewRegistry()}
	p, err := Start(t.Context(), Config{Kind: "storage", Builtin: "x", RawConfig: badgerConfig(t, t.TempDir()), StartTimeout: time.Hour},
		Options{
			Logger: slog.New(slog.NewTextHandler(h.log, nil)), Registerer: h.reg, Self: os.Args[0],
			Env:        []string{modeEnv + "=hang-on-restart", "SOTTO_TEST_MARKER=" + filepath.Join(t.TempDir(), "started")},
			MinBackoff: time.Millisecond,
		})
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for counter(t, metricsOf(h.reg).crashes.WithLabelValues("storage")) < 1 {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let the restart reach the handshake
	closed := make(chan struct{})
	go func() { _ = p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(time.Minute): // StartTimeout is an hour: this is a hang, not slowness
		t.Fatal("Close hung behind a restart stuck in its handshake")
	}
	if kids := childProcesses(); len(kids) > 0 {
		t.Errorf("processes outlived Close: %v", kids)
	}
}
