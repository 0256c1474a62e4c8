// Package storagepostgres is Sotto's Storage plugin on PostgreSQL: provider
// mailboxes, per-epoch replay-tag sets and a namespaced key-value space for
// other plugins, in one schema of a PostgreSQL database reached through
// pgx (pgxpool).
//
// It sits behind the interfaces.Storage contract like storage-badger: the
// host calls it in-process or across go-plugin/gRPC (cmd/storage-postgres,
// or `sotto plugin storage-postgres`). Every batch call is one database
// transaction; replay tags are one INSERT per batch whose unique key
// decides which tags were seen. The README beside this file states the
// guarantees per method, the schema and the SQL it relies on.
package storagepostgres
