package plugin

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/pgtest"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
	storagepostgres "github.com/sottonet/sotto/plugins/storage-postgres"
)

// BenchmarkStorageBackends runs the same calls against both storage
// plugins in one run, in process, each in its durable default and with
// its durability relaxed to "survives a crash of the node, not of the
// machine" (Badger sync_writes: false; PostgreSQL synchronous_commit:
// off, where a crash of the database server may lose the last commits).
// PostgreSQL is the server of SOTTO_POSTGRES_DSN (the postgres backends
// are skipped without it). docs/BENCHMARKS.md "Storage backends" reads
// these.
//
//	go test -run '^$' -bench 'StorageBackends' ./host/plugin
func BenchmarkStorageBackends(b *testing.B) {
	for _, backend := range []struct {
		name string
		open func(b *testing.B) interfaces.Storage
	}{
		{"badger/sync", func(b *testing.B) interfaces.Storage { return openBadgerBench(b, true) }},
		{"badger/nosync", func(b *testing.B) interfaces.Storage { return openBadgerBench(b, false) }},
		{"postgres/sync", func(b *testing.B) interfaces.Storage { return openPostgresBench(b, true) }},
		{"postgres/nosync", func(b *testing.B) interfaces.Storage { return openPostgresBench(b, false) }},
	} {
		b.Run(backend.name, func(b *testing.B) {
			b.Run("InsertReplayTags100", func(b *testing.B) { benchBackendReplay(b, backend.open(b), 1) })
			b.Run("InsertReplayTags100x4", func(b *testing.B) { benchBackendReplay(b, backend.open(b), 4) })
			b.Run("AppendMailbox100x2KiB", func(b *testing.B) { benchBackendAppend(b, backend.open(b)) })
			b.Run("FetchMailbox100x2KiB", func(b *testing.B) { benchBackendFetch(b, backend.open(b)) })
		})
	}
}

func openBadgerBench(b *testing.B, sync bool) interfaces.Storage {
	cfg := storagebadger.DefaultConfig(b.TempDir())
	cfg.SyncWrites = sync
	s, err := storagebadger.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func openPostgresBench(b *testing.B, sync bool) interfaces.Storage {
	dsn := pgtest.DSN(b)
	cfg := storagepostgres.DefaultConfig(dsn)
	cfg.Schema = pgtest.Schema(b, dsn)
	cfg.SynchronousCommit = sync
	s, err := storagepostgres.Open(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// benchBackendReplay commits batches of 100 fresh tags from par
// goroutines at once (a node runs one committer; several nodes sharing a
// database, or a bigger node, run more). It reports ns/tag of wall time.
func benchBackendReplay(b *testing.B, s interfaces.Storage, par int) {
	var next atomic.Uint64
	batch := func() error {
		tags := make([]interfaces.ReplayTag, 100)
		for i := range tags {
			binary.BigEndian.PutUint64(tags[i][:], next.Add(1))
		}
		_, err := s.InsertReplayTags(context.Background(), &interfaces.InsertReplayTagsRequest{Epoch: 1, Tags: tags})
		return err
	}
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		errs := make(chan error, par)
		for range par {
			go func() { errs <- batch() }()
		}
		for range par {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(next.Load()), "ns/tag")
}

// randomPayload is 2 KiB of random bytes: a Sphinx payload is ciphertext,
// which no store can compress.
func randomPayload() []byte {
	p := make([]byte, 2048)
	_, _ = rand.Read(p)
	return p
}

// benchBackendAppend appends batches of 100 payloads of 2 KiB over 10
// mailboxes: a provider's group of deliveries.
func benchBackendAppend(b *testing.B, s interfaces.Storage) {
	msgs := make([]interfaces.MailboxMessage, 100)
	payload := randomPayload()
	for i := range msgs {
		msgs[i] = interfaces.MailboxMessage{Payload: payload, Lifetime: time.Hour}
		msgs[i].Mailbox[0] = byte(i % 10)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(msgs) * len(payload)))
	for b.Loop() {
		if _, err := s.AppendMailbox(context.Background(), &interfaces.AppendMailboxRequest{Messages: msgs}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "msgs/s")
}

// benchBackendFetch fetches 100 messages of 2 KiB (with payloads) from a
// mailbox of 1,000: a client's fetch.
func benchBackendFetch(b *testing.B, s interfaces.Storage) {
	var mb interfaces.MailboxID
	mb[0] = 0xfe
	payload := randomPayload()
	for range 10 {
		msgs := make([]interfaces.MailboxMessage, 100)
		for i := range msgs {
			msgs[i] = interfaces.MailboxMessage{Mailbox: mb, Payload: payload, Lifetime: time.Hour}
		}
		if _, err := s.AppendMailbox(context.Background(), &interfaces.AppendMailboxRequest{Messages: msgs}); err != nil {
			b.Fatal(err)
		}
	}
	var after uint64
	b.ReportAllocs()
	b.SetBytes(100 * 2048)
	for b.Loop() {
		r, err := s.FetchMailbox(context.Background(), &interfaces.FetchMailboxRequest{Mailbox: mb, After: after, Limit: 100})
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Entries) < 100 {
			if len(r.Entries) == 0 && after == 0 {
				b.Fatal("an empty mailbox")
			}
			after = 0 // wrap around: the mailbox holds 1,000
			continue
		}
		after = r.Entries[len(r.Entries)-1].ID
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "msgs/s")
}
