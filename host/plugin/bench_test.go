package plugin

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"testing"
	"time"

	"golang.org/x/crypto/curve25519"

	"github.com/sottonet/sotto/interfaces"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

// The per-call price of a plugin boundary: the same Badger store called in
// process and out of process (go-plugin over gRPC on a Unix socket), with
// and without fsync per commit. docs/BENCHMARKS.md "Plugins" reads these.
func BenchmarkStorage(b *testing.B) {
	for _, sync := range []bool{false, true} {
		for _, mode := range []string{"in-process", "out-of-process"} {
			name := mode
			if sync {
				name += "/sync"
			} else {
				name += "/nosync"
			}
			b.Run(name, func(b *testing.B) {
				s := benchStore(b, mode, sync)
				b.Run("KVGet", func(b *testing.B) { benchKVGet(b, s) })
				b.Run("InsertReplayTags100", func(b *testing.B) { benchReplay(b, s) })
				b.Run("AppendMailbox100x2KiB", func(b *testing.B) { benchAppend(b, s) })
			})
		}
	}
}

func benchStore(b *testing.B, mode string, sync bool) interfaces.Storage {
	b.Helper()
	dir := b.TempDir()
	if mode == "in-process" {
		cfg := storagebadger.DefaultConfig(dir)
		cfg.SyncWrites = sync
		s, err := storagebadger.Open(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s
	}
	raw, _ := json.Marshal(map[string]any{"dir": dir, "sync_writes": sync})
	p, err := Start(b.Context(), Config{Kind: "storage", Builtin: "bench", RawConfig: raw},
		Options{Self: os.Args[0], Env: []string{modeEnv + "=badger"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	return p.Storage()
}

func benchKVGet(b *testing.B, s interfaces.Storage) {
	req := &interfaces.KVGetRequest{Namespace: "bench", Keys: [][]byte{[]byte("missing")}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.KVGet(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}

func benchReplay(b *testing.B, s interfaces.Storage) {
	var n uint64
	tags := make([]interfaces.ReplayTag, 100)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		for i := range tags {
			n++
			binary.BigEndian.PutUint64(tags[i][:], n)
		}
		if _, err := s.InsertReplayTags(b.Context(), &interfaces.InsertReplayTagsRequest{Epoch: 1, Tags: tags}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n), "ns/tag")
}

func benchAppend(b *testing.B, s interfaces.Storage) {
	msgs := make([]interfaces.MailboxMessage, 100)
	payload := make([]byte, 2048)
	for i := range msgs {
		msgs[i] = interfaces.MailboxMessage{Payload: payload, Lifetime: time.Hour}
		msgs[i].Mailbox[0] = byte(i)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(msgs) * len(payload)))
	for b.Loop() {
		if _, err := s.AppendMailbox(b.Context(), &interfaces.AppendMailboxRequest{Messages: msgs}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkX25519Reference is the yardstick for the hot-path target while
// core/sphinx's BenchmarkUnwrap is not in the tree: a Sphinx unwrap costs
// at least two X25519 scalar multiplications (shared secret, blinding), so
// twice this is a lower bound on one unwrap, measured in the same run.
func BenchmarkX25519Reference(b *testing.B) {
	scalar := make([]byte, 32)
	scalar[0] = 9
	point, err := curve25519.X25519(scalar, curve25519.Basepoint)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if point, err = curve25519.X25519(scalar, point); err != nil {
			b.Fatal(err)
		}
	}
}
