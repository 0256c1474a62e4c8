package storagepostgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sottonet/sotto/interfaces"
)

// SchemaVersion is the newest schema this plugin knows. Open brings an
// older schema up to it and refuses a newer one.
const SchemaVersion = 1

// ErrSchemaTooNew is wrapped by Open's error when the database's schema
// was written by a newer plugin than this one: running on it could
// corrupt what that version stored.
var ErrSchemaTooNew = errors.New("storage-postgres: database schema is newer than this plugin")

// migrations[i] brings the schema from version i to i+1. Every statement
// is idempotent (IF NOT EXISTS), so a migration interrupted before its
// commit (they run in one transaction anyway) simply runs again. %[1]s is
// the quoted schema. Never edit a released migration: append one.
var migrations = []string{
	// 1: mailboxes, KV. Replay tags get one table per epoch, created on
	// first use (replayTable), so that dropping an epoch is a DROP TABLE.
	`CREATE TABLE IF NOT EXISTS %[1]s.mailbox_counters (
		mailbox bytea PRIMARY KEY,
		last_id bigint NOT NULL
	);
	CREATE TABLE IF NOT EXISTS %[1]s.messages (
		mailbox bytea NOT NULL,
		id bigint NOT NULL,
		expires bigint NOT NULL,
		payload bytea NOT NULL,
		PRIMARY KEY (mailbox, id)
	);
	CREATE INDEX IF NOT EXISTS messages_expires ON %[1]s.messages (expires);
	-- Payloads are Sphinx ciphertext of about 2 KiB: nothing compresses
	-- them, and moving them to the TOAST table costs two more rows and
	-- index entries each. Keep rows up to a page inline (PostgreSQL only).
	ALTER TABLE %[1]s.messages ALTER COLUMN payload SET STORAGE MAIN;
	ALTER TABLE %[1]s.messages SET (toast_tuple_target = 8160);
	CREATE TABLE IF NOT EXISTS %[1]s.kv (
		ns bytea NOT NULL,
		key bytea NOT NULL,
		value bytea NOT NULL,
		expires bigint NOT NULL,
		PRIMARY KEY (ns, key)
	);
	CREATE INDEX IF NOT EXISTS kv_expires ON %[1]s.kv (expires) WHERE expires <> 0;`,
}

// migrate creates the schema or brings it up to SchemaVersion, in one
// transaction under an advisory lock, so that two plugins opening the same
// schema at once migrate it once.
func (s *Store) migrate(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "sotto-storage-postgres:"+s.cfg.Schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+s.schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.t("meta")+` (name text PRIMARY KEY, value bigint NOT NULL)`); err != nil {
			return err
		}
		var v int64
		err := tx.QueryRow(ctx, `SELECT value FROM `+s.t("meta")+` WHERE name = 'schema_version'`).Scan(&v)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if v > SchemaVersion {
			return fmt.Errorf("%w: schema %q is at version %d, this plugin knows up to %d; upgrade the plugin",
				ErrSchemaTooNew, s.cfg.Schema, v, SchemaVersion)
		}
		for ; v < SchemaVersion; v++ {
			if _, err := tx.Exec(ctx, fmt.Sprintf(migrations[v], s.schema)); err != nil {
				return fmt.Errorf("migration to version %d: %w", v+1, err)
			}
			s.cfg.Logger.Info("storage-postgres: schema migrated", "schema", s.cfg.Schema, "version", v+1)
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+s.t("meta")+` (name, value) VALUES ('schema_version', $1)
			ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, int64(SchemaVersion))
		return err
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrSchemaTooNew):
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("storage-postgres: creating schema %q: %w", s.cfg.Schema, ctx.Err())
	}
	return fmt.Errorf("storage-postgres: creating schema %q: %w: %v", s.cfg.Schema, interfaces.ErrUnavailable, redact(err.Error(), s.cfg.DSN))
}
