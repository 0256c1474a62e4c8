package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// storage is the nodes' storage slot for localnet: nil for Badger, and
// for "postgres" storage-postgres with one schema per node, named after
// the run and the node so that runs sharing a database do not meet.
func (r *run) storage() func(name string) (string, map[string]any) {
	if r.cfg.Storage != "postgres" {
		return nil
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	prefix := "sotto_demo_" + hex.EncodeToString(b[:]) + "_"
	return func(name string) (string, map[string]any) {
		schema := prefix + strings.ReplaceAll(name, "-", "_")
		r.schemas = append(r.schemas, schema)
		cfg := map[string]any{"schema": schema}
		if r.cfg.PostgresDSN != "" {
			cfg["dsn"] = r.cfg.PostgresDSN
		}
		return "storage-postgres", cfg
	}
}

// dropSchemas removes the nodes' schemas once the nodes are stopped. An
// empty PostgresDSN reaches the database the nodes reached: through the
// PG* environment.
func (r *run) dropSchemas() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, r.cfg.PostgresDSN)
	if err != nil {
		r.log.Warn("dropping the nodes' schemas: connecting", "err", err)
		return
	}
	defer conn.Close(ctx)
	for _, s := range r.schemas {
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{s}.Sanitize()+` CASCADE`); err != nil {
			r.log.Warn("dropping a node's schema", "schema", s, "err", err)
		}
	}
}
