package interfaces_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sottonet/sotto/interfaces"
	storagev1 "github.com/sottonet/sotto/interfaces/internal/proto/storage/v1"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

// Whatever bytes reach a storage plugin's gRPC server, it answers with a
// result or a status error, never a panic. The fuzzer drives every method
// straight into the server shim over a Badger store.
func FuzzStorageServerWire(f *testing.F) {
	f.Add(uint8(0), []byte{})
	f.Add(uint8(4), mustMarshal(&storagev1.InsertReplayTagsRequest{Epoch: 1, Tags: make([]byte, 33)}))
	f.Add(uint8(0), mustMarshal(&storagev1.AppendMailboxRequest{Messages: []*storagev1.MailboxMessage{{Mailbox: make([]byte, 31), Payload: []byte("x"), LifetimeNs: 1}}}))
	f.Add(uint8(6), mustMarshal(&storagev1.KVPutRequest{Namespace: "n", Entries: []*storagev1.KVEntry{{Key: []byte("k"), LifetimeNs: -1}}}))
	cfg := storagebadger.DefaultConfig(f.TempDir())
	cfg.SyncWrites = false
	store, err := storagebadger.Open(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = store.Close() })
	srv := interfaces.NewStorageGRPCServer(store)
	f.Fuzz(func(t *testing.T, method uint8, raw []byte) {
		ctx := context.Background()
		var err error
		switch method % 10 {
		case 0:
			var in storagev1.AppendMailboxRequest
			if proto.Unmarshal(raw, &in) == nil {
				_, err = srv.AppendMailbox(ctx, &in)
			}
		case 1:
			var in storagev1.ListMailboxRequest
			if proto.Unmarshal(raw, &in) == nil {
				_, err = srv.ListMailbox(ctx, &in)
			}
		case 2:
			var in storagev1.FetchMailboxRequest
			if proto.Unmarshal(raw, &in) == nil {
				_, err = srv.FetchMailbox(ctx, &in)
			}
		case 3:
			var in storagev1.AckMailboxRequest
			if proto.Unmarshal(raw, &in) == nil {
				_, err = srv.AckMailbox(ctx, &in)
			}
		case 4:
			var in storagev1.InsertReplayTagsRequest
			if proto.Unmarshal(raw, &in) == nil {
				_, err = srv.InsertReplayTags(ctx, &in)
			}
		case 5:
			var in storagev1.DropReplayEpochRequest
			if proto.Unmarshal(raw, &in) == nil {
				_, err = srv.DropReplayEpoch(ctx, &in)
			}
		case 6:
			var in storagev1.KVPutRequest
			if proto.Unmarshal(raw, &in) == nil {
				_, err = srv.KVPut(ctx, &in)
			}
		case 7:
			var in storagev1.KVGetRequest
			if proto.Unmarshal(raw, &in) == nil {
				_, err = srv.KVGet(ctx, &in)
			}
		case 8:
			var in storagev1.KVDeleteRequest
			if proto.Unmarshal(raw, &in) == nil {
				_, err = srv.KVDelete(ctx, &in)
			}
		case 9:
			var in storagev1.KVListRequest
			if proto.Unmarshal(raw, &in) == nil {
				_, err = srv.KVList(ctx, &in)
			}
		}
		if err != nil {
			if _, ok := status.FromError(err); !ok {
				t.Fatalf("server answered a non-status error %v", err)
			}
			if status.Code(err) == codes.Unknown {
				t.Fatalf("bad input gave an unclassified error %v", err)
			}
		}
	})
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}
