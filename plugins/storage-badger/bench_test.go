package storagebadger

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/storagetest"
)

// benchStore opens a store with production sizes and the given SyncWrites.
func benchStore(b *testing.B, sync bool) *Store {
	b.Helper()
	cfg := DefaultConfig(b.TempDir())
	cfg.SyncWrites = sync
	cfg.Logger = quietLogger()
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func forSync(b *testing.B, fn func(b *testing.B, s *Store)) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) { fn(b, benchStore(b, sync)) })
	}
}

// BenchmarkInsertReplayTags100 commits batches of 100 fresh tags: what a
// mix group-commits before packets leave the mixing queue.
func BenchmarkInsertReplayTags100(b *testing.B) {
	forSync(b, func(b *testing.B, s *Store) {
		ctx := context.Background()
		req := &interfaces.InsertReplayTagsRequest{Epoch: 1, Tags: make([]interfaces.ReplayTag, 100)}
		var n uint64
		b.ReportAllocs()
		for b.Loop() {
			for i := range req.Tags {
				n++
				binary.BigEndian.PutUint64(req.Tags[i][:], n)
			}
			if _, err := s.InsertReplayTags(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/tag")
	})
}

// BenchmarkAppendMailbox100x2KiB appends batches of 100 payloads of 2 KiB
// spread over 10 mailboxes.
func BenchmarkAppendMailbox100x2KiB(b *testing.B) {
	forSync(b, func(b *testing.B, s *Store) {
		ctx := context.Background()
		payload := make([]byte, 2048)
		req := &interfaces.AppendMailboxRequest{Messages: make([]interfaces.MailboxMessage, 100)}
		for i := range req.Messages {
			req.Messages[i] = interfaces.MailboxMessage{Mailbox: mbox(byte(i % 10)), Payload: payload, Lifetime: time.Hour}
		}
		b.SetBytes(100 * 2048)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.AppendMailbox(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkKVPutIfAbsent writes one fresh key with IfAbsent per call: a
// spent-token check.
func BenchmarkKVPutIfAbsent(b *testing.B) {
	forSync(b, func(b *testing.B, s *Store) {
		ctx := context.Background()
		key := make([]byte, 32)
		req := &interfaces.KVPutRequest{Namespace: "spent-tokens", Entries: []interfaces.KVEntry{{Key: key, Value: []byte{1}, IfAbsent: true}}}
		var n uint64
		b.ReportAllocs()
		for b.Loop() {
			n++
			binary.BigEndian.PutUint64(key, n)
			resp, err := s.KVPut(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			if !resp.Applied[0] {
				b.Fatal("fresh key not applied")
			}
		}
	})
}

// BenchmarkInsertReplayTags100Parallel runs batches of 100 tags from
// several goroutines at once: with sync on, concurrent commits share
// Badger's fsync, which one writer alone cannot.
func BenchmarkInsertReplayTags100Parallel(b *testing.B) {
	forSync(b, func(b *testing.B, s *Store) {
		ctx := context.Background()
		var next atomic.Uint64
		b.SetParallelism(4)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			req := &interfaces.InsertReplayTagsRequest{Epoch: 1, Tags: make([]interfaces.ReplayTag, 100)}
			for pb.Next() {
				for i := range req.Tags {
					binary.BigEndian.PutUint64(req.Tags[i][:], next.Add(1))
				}
				if _, err := s.InsertReplayTags(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(next.Load()), "ns/tag")
	})
}

// BenchmarkInsertReplayTags100Transport measures a batch of 100 tags
// in-process and through a real go-plugin gRPC connection, with sync off
// so that the difference is the transport's cost, not the disk's.
func BenchmarkInsertReplayTags100Transport(b *testing.B) {
	for _, over := range []string{"inprocess", "grpc"} {
		b.Run(over, func(b *testing.B) {
			var s interfaces.Storage = benchStore(b, false)
			if over == "grpc" {
				s = storagetest.OverGRPC(b, s)
			}
			ctx := context.Background()
			req := &interfaces.InsertReplayTagsRequest{Epoch: 1, Tags: make([]interfaces.ReplayTag, 100)}
			var n uint64
			b.ReportAllocs()
			for b.Loop() {
				for i := range req.Tags {
					n++
					binary.BigEndian.PutUint64(req.Tags[i][:], n)
				}
				if _, err := s.InsertReplayTags(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/tag")
		})
	}
}
