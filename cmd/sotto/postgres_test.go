package main

import (
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
