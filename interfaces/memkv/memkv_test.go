package memkv_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
	"github.com/sottonet/sotto/interfaces/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.RunKV(t, func(t *testing.T) interfaces.KV { return memkv.New() })
}

// What a caller hands in is copied: changing a slice after Put or after
// Get does not change what is stored.
func TestValuesAreCopied(t *testing.T) {
	ctx := context.Background()
	kv := memkv.New()
	v := []byte("abc")
	if _, err := kv.KVPut(ctx, &interfaces.KVPutRequest{Namespace: "n", Entries: []interfaces.KVEntry{{Key: []byte("k"), Value: v}}}); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	got, err := kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: "n", Keys: [][]byte{[]byte("k")}})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Values[0]) != "abc" {
		t.Fatalf("stored value changed with the caller's slice: %q", got.Values[0])
	}
	got.Values[0][0] = 'Y'
	again, _ := kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: "n", Keys: [][]byte{[]byte("k")}})
	if string(again.Values[0]) != "abc" {
		t.Fatalf("stored value changed with a reader's slice: %q", again.Values[0])
	}
}

func TestRefusesBadRequestsWhole(t *testing.T) {
	ctx := context.Background()
	kv := memkv.New()
	_, err := kv.KVPut(ctx, &interfaces.KVPutRequest{Namespace: "n", Entries: []interfaces.KVEntry{
		{Key: []byte("ok"), Value: []byte("1")}, {Key: nil, Value: []byte("2")}}})
	if !errors.Is(err, interfaces.ErrInvalidArgument) {
		t.Fatalf("err = %v, want ErrInvalidArgument", err)
	}
	got, _ := kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: "n", Keys: [][]byte{[]byte("ok")}})
	if got.Found[0] {
		t.Fatal("a batch with a bad entry was partly applied")
	}
	if _, err := kv.KVList(ctx, &interfaces.KVListRequest{Namespace: "n", Limit: -1}); !errors.Is(err, interfaces.ErrInvalidArgument) {
		t.Fatalf("negative limit: err = %v", err)
	}
	if _, err := kv.KVGet(ctx, nil); !errors.Is(err, interfaces.ErrInvalidArgument) {
		t.Fatalf("nil request: err = %v", err)
	}
}
