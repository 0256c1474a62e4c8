package storagepostgres

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/plugintest"
	"github.com/sottonet/sotto/interfaces/storagetest"
	"github.com/sottonet/sotto/internal/pgtest"
)

// servePluginEnv makes the re-executed test binary act as the plugin
// process: exactly what cmd/storage-postgres does, without building it.
const servePluginEnv = "STORAGE_POSTGRES_SERVE_PLUGIN"

func TestMain(m *testing.M) {
	if os.Getenv(servePluginEnv) == "1" {
		interfaces.Serve(Plugin())
		return
	}
	os.Exit(m.Run())
}

// testConfig is the config of a store in a schema of its own.
func testConfig(t testing.TB, dsn string) Config {
	cfg := DefaultConfig(dsn)
	cfg.Schema = pgtest.Schema(t, dsn)
	cfg.MaxConns = 4
	cfg.Logger = testLogger()
	return cfg
}

func openCfg(t testing.TB, cfg Config) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openTest(t testing.TB) *Store {
	t.Helper()
	return openCfg(t, testConfig(t, pgtest.DSN(t)))
}

func testLogger() *slog.Logger {
	if os.Getenv("SOTTO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// reopen closes s and opens its schema again, as a restarted plugin.
func reopen(t *testing.T, st interfaces.Storage) interfaces.Storage {
	s := st.(*Store)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return openCfg(t, s.cfg)
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) interfaces.Storage { return openTest(t) }, storagetest.Options{Reopen: reopen})
}

func TestConformanceOverGRPC(t *testing.T) {
	var mu sync.Mutex
	stores := map[interfaces.Storage]*Store{} // shim -> the store behind it
	wrap := func(t *testing.T, s *Store) interfaces.Storage {
		shim := storagetest.OverGRPC(t, s)
		mu.Lock()
		stores[shim] = s
		mu.Unlock()
		return shim
	}
	storagetest.Run(t, func(t *testing.T) interfaces.Storage { return wrap(t, openTest(t)) },
		storagetest.Options{Reopen: func(t *testing.T, shim interfaces.Storage) interfaces.Storage {
			mu.Lock()
			s := stores[shim]
			mu.Unlock()
			return wrap(t, reopen(t, s).(*Store))
		}})
}

// startProcess starts the plugin as a real process (this test binary
// re-executed as cmd/storage-postgres would run) configured with raw.
func startProcess(t testing.TB, raw []byte) (interfaces.Storage, error) {
	s, _, err := startProcessCmd(t, raw)
	return s, err
}

// startProcessCmd is startProcess returning the process's command too.
func startProcessCmd(t testing.TB, raw []byte) (interfaces.Storage, *exec.Cmd, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), servePluginEnv+"=1")
	v, err := plugintest.StartProcess(t, interfaces.StorageKind, cmd, raw)
	if err != nil {
		return nil, nil, err
	}
	return v.(interfaces.Storage), cmd, nil
}

func processConfig(t testing.TB, dsn, schema string) []byte {
	raw, err := json.Marshal(map[string]any{"dsn": dsn, "schema": schema, "max_conns": 4})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestConformanceOutOfProcess runs the suite against real plugin
// processes, one per subtest, the restart case included (a new process on
// the same schema).
func TestConformanceOutOfProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts plugin processes")
	}
	dsn := pgtest.DSN(t)
	var mu sync.Mutex
	schemas := map[interfaces.Storage]string{}
	start := func(t *testing.T, schema string) interfaces.Storage {
		s, err := startProcess(t, processConfig(t, dsn, schema))
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		schemas[s] = schema
		mu.Unlock()
		return s
	}
	storagetest.Run(t, func(t *testing.T) interfaces.Storage {
		return start(t, pgtest.Schema(t, dsn))
	}, storagetest.Options{Reopen: func(t *testing.T, s interfaces.Storage) interfaces.Storage {
		mu.Lock()
		schema := schemas[s]
		mu.Unlock()
		return start(t, schema)
	}})
}
