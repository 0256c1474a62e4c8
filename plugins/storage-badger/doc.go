// Package storagebadger is Sotto's Storage plugin on Badger v4: provider
// mailboxes, per-epoch replay-tag sets and a namespaced key-value space for
// other plugins, all in one embedded Badger database.
//
// It sits behind the interfaces.Storage contract: the host calls it either
// in-process or across go-plugin/gRPC (see cmd/storage-badger), and never
// sees Badger itself. Every batch call is one Badger transaction, committed
// with SyncWrites on by default, so a call that returns nil is on disk.
// The README beside this file gives the key layout, the config keys and
// what is durable against which failure.
package storagebadger
