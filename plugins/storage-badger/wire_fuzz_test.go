package storagebadger_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/plugintest"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

// rawCodec sends and receives message bytes as they are, so the fuzzer
// reaches the plugin's server with bytes no generated type has vetted.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// The methods of sotto.storage.v1.Storage (interfaces/proto/storage/v1).
var storageMethods = []string{"AppendMailbox", "ListMailbox", "FetchMailbox", "AckMailbox",
	"InsertReplayTags", "DropReplayEpoch", "KVPut", "KVGet", "KVDelete", "KVList"}

// Whatever bytes reach a storage plugin's gRPC server, it answers with a
// result or a status error that says what went wrong (never Unknown), and
// never panics. The fuzzer calls every method of the wire contract with
// arbitrary request bytes over a real gRPC connection to Badger.
func FuzzStorageServerWire(f *testing.F) {
	tags := protowire.AppendTag(nil, 1, protowire.VarintType)
	tags = protowire.AppendVarint(tags, 1)
	tags = protowire.AppendTag(tags, 2, protowire.BytesType)
	tags = protowire.AppendBytes(tags, make([]byte, 33)) // not a multiple of 32
	msg := protowire.AppendTag(nil, 1, protowire.BytesType)
	msg = protowire.AppendBytes(msg, make([]byte, 31)) // a mailbox ID too short
	msg = protowire.AppendTag(msg, 2, protowire.BytesType)
	msg = protowire.AppendBytes(msg, []byte("x"))
	msg = protowire.AppendTag(msg, 3, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 1)
	appendReq := protowire.AppendTag(nil, 1, protowire.BytesType)
	appendReq = protowire.AppendBytes(appendReq, msg)
	entry := protowire.AppendTag(nil, 1, protowire.BytesType)
	entry = protowire.AppendBytes(entry, []byte("k"))
	entry = protowire.AppendTag(entry, 4, protowire.VarintType)
	entry = protowire.AppendVarint(entry, ^uint64(0)) // lifetime_ns -1: int64 fields are two's-complement varints
	put := protowire.AppendTag(nil, 1, protowire.BytesType)
	put = protowire.AppendBytes(put, []byte("n"))
	put = protowire.AppendTag(put, 2, protowire.BytesType)
	put = protowire.AppendBytes(put, entry)
	f.Add(uint8(0), []byte{})
	f.Add(uint8(4), tags)
	f.Add(uint8(0), appendReq)
	f.Add(uint8(6), put)
	f.Add(uint8(9), []byte{0xff, 0xff})
	cfg := storagebadger.DefaultConfig(f.TempDir())
	cfg.SyncWrites = false
	store, err := storagebadger.Open(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = store.Close() })
	conn := plugintest.Conn(f, interfaces.StorageKind, store)
	f.Fuzz(func(t *testing.T, method uint8, raw []byte) {
		name := storageMethods[int(method)%len(storageMethods)]
		var out []byte
		err := conn.Invoke(context.Background(), "/sotto.storage.v1.Storage/"+name, &raw, &out, grpc.ForceCodec(rawCodec{}))
		if err == nil {
			return
		}
		st, ok := status.FromError(err)
		if !ok {
			t.Fatalf("%s: a non-status error %v", name, err)
		}
		if st.Code() == codes.Unknown || st.Code() == codes.Unimplemented {
			t.Fatalf("%s: bad input gave %v", name, err)
		}
	})
}
