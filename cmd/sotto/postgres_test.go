package main

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/sottonet/sotto/internal/pgtest"
)

// The node on storage-postgres, as an operator runs it: `sotto node`
// processes whose storage slot is the builtin storage-postgres, a schema
// per node in one database.

// TestReplayTagsSurviveSIGKILLAndADatabaseRestartOnPostgres is
// TestReplayTagsSurviveSIGKILL with every node on PostgreSQL (a cluster of
// the test's own), and the database crashed and restarted while the mix
// is down: the replayed packets are still all dropped, so the tags the mix
// committed before its SIGKILL survived both.
func TestReplayTagsSurviveSIGKILLAndADatabaseRestartOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes and a PostgreSQL cluster")
	}
	c := pgtest.StartCluster(t)
	spec := replaySpec()
	spec.Storage = func(name string) (string, map[string]any) {
		return "storage-postgres", map[string]any{"dsn": c.DSN(), "schema": strings.ReplaceAll(name, "-", "_"), "max_conns": 4}
	}
	replayTagsSurviveSIGKILL(t, spec, func() {
		c.Crash()
		c.Start()
	})
}

// TestDemoOnPostgresDeliversEveryMessageExactlyOnce is the demo with
// --storage postgres against the test database.
func TestDemoOnPostgresDeliversEveryMessageExactlyOnce(t *testing.T) {
	cfg := fastDemo()
	cfg.Storage, cfg.PostgresDSN = "postgres", pgtest.DSN(t)
	sum, out := runDemo(t, cfg)
	if err := sum.Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "verdict      OK") {
		t.Errorf("the summary lacks the OK verdict")
	}
}

// TestNodeCheckOnPostgres: `sotto node --check` with the storage slot on
// storage-postgres (selected from the environment, as an operator may)
// starts the plugin against the database and reports it; with a database
// that cannot be reached it reports that, naming the slot and where it
// tried, and never the password.
func TestNodeCheckOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := keyed(t)
	t.Setenv("SOTTO_PLUGINS__STORAGE__BUILTIN", "storage-postgres")
	cfg := func(raw string) string {
		// The file names storage-badger with a dir; the environment
		// replaces the slot's builtin and its whole config.
		t.Setenv("SOTTO_PLUGINS__STORAGE__CONFIG", raw)
		return nodeConfig(t, dir, "")
	}
	schema := pgtest.Schema(t, dsn)
	raw, _ := json.Marshal(map[string]any{"dsn": dsn, "schema": schema})
	out, stderr, err := run(t, "node", "--check", "--config", cfg(string(raw)))
	if err != nil {
		t.Fatalf("check failed: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "plugins.storage: storage plugin storage-postgres") {
		t.Errorf("the check said %q, want the storage-postgres slot in it", out)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	const secret = "pw-never-printed"
	raw, _ = json.Marshal(map[string]any{"dsn": fmt.Sprintf("postgres://sotto:%s@127.0.0.1:%d/nodedb?sslmode=disable", secret, port), "connect_timeout": "3s"})
	out, stderr, err = run(t, "node", "--check", "--config", cfg(string(raw)))
	if err == nil {
		t.Fatalf("check passed with no database listening: %s", out)
	}
	for _, want := range []string{"plugins.storage:", "cannot reach the database", fmt.Sprintf("port %d", port), `database "nodedb"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q does not report %q", stderr, want)
		}
	}
	if strings.Contains(out+stderr, secret) {
		t.Errorf("the check printed the password: %s%s", out, stderr)
	}
}

// The demo's --storage flag reaches its config: an unknown backend is
// refused before any process starts.
func TestDemoCommandRefusesAnUnknownStorage(t *testing.T) {
	_, _, err := run(t, "demo", "--storage", "mysql")
	if err == nil || !strings.Contains(err.Error(), `storage "mysql"`) {
		t.Fatalf("sotto demo --storage mysql: %v; want the storage named", err)
	}
}
