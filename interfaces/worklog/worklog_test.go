package worklog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
)

const ns = "worklog-test"

func newLog(prefix []byte) (*Log, *memkv.KV) {
	kv := memkv.New()
	return &Log{KV: kv, Swapper: kv, Namespace: ns, Prefix: prefix, Name: "test"}, kv
}

func node(b byte) interfaces.NodeID { var n interfaces.NodeID; n[0] = b; return n }

func rec(n byte, k interfaces.WorkKind, p uint64) interfaces.WorkRecord {
	return interfaces.WorkRecord{Node: node(n), Kind: k, Packets: p}
}

func TestRecord(t *testing.T) {
	fwd, del, prb := interfaces.WorkForwarded, interfaces.WorkDelivered, interfaces.WorkProbed
	tests := []struct {
		name    string
		reports []*interfaces.RecordWorkRequest
		epoch   uint64
		want    []interfaces.NodeEarnings
		wantErr error
	}{
		{name: "nothing", reports: nil, epoch: 1, want: nil},
		{name: "one report, kinds summed per node", epoch: 1, reports: []*interfaces.RecordWorkRequest{
			{Epoch: 1, BatchID: []byte("a"), Records: []interfaces.WorkRecord{rec(2, fwd, 3), rec(1, del, 4), rec(2, fwd, 5), rec(2, prb, 1)}},
		}, want: []interfaces.NodeEarnings{{Node: node(1), Delivered: 4}, {Node: node(2), Forwarded: 8, Probed: 1}}},
		{name: "repeated batch counts once", epoch: 1, reports: []*interfaces.RecordWorkRequest{
			{Epoch: 1, BatchID: []byte("a"), Records: []interfaces.WorkRecord{rec(1, fwd, 3)}},
			{Epoch: 1, BatchID: []byte("a"), Records: []interfaces.WorkRecord{rec(1, fwd, 3)}},
			{Epoch: 1, BatchID: []byte("b"), Records: []interfaces.WorkRecord{rec(1, fwd, 2)}},
		}, want: []interfaces.NodeEarnings{{Node: node(1), Forwarded: 5}}},
		{name: "no batch id always counts", epoch: 1, reports: []*interfaces.RecordWorkRequest{
			{Epoch: 1, Records: []interfaces.WorkRecord{rec(1, fwd, 3)}},
			{Epoch: 1, Records: []interfaces.WorkRecord{rec(1, fwd, 3)}},
		}, want: []interfaces.NodeEarnings{{Node: node(1), Forwarded: 6}}},
		{name: "same batch id in another epoch counts", epoch: 2, reports: []*interfaces.RecordWorkRequest{
			{Epoch: 1, BatchID: []byte("a"), Records: []interfaces.WorkRecord{rec(1, fwd, 3)}},
			{Epoch: 2, BatchID: []byte("a"), Records: []interfaces.WorkRecord{rec(1, fwd, 7)}},
		}, want: []interfaces.NodeEarnings{{Node: node(1), Forwarded: 7}}},
		{name: "unknown kind fails the whole report", epoch: 1, reports: []*interfaces.RecordWorkRequest{
			{Epoch: 1, BatchID: []byte("a"), Records: []interfaces.WorkRecord{rec(1, fwd, 3), rec(1, interfaces.WorkProbeSent, 1)}},
		}, want: nil, wantErr: interfaces.ErrInvalidArgument},
		{name: "kind zero is unknown", epoch: 1, reports: []*interfaces.RecordWorkRequest{
			{Epoch: 1, Records: []interfaces.WorkRecord{rec(1, 0, 3)}},
		}, want: nil, wantErr: interfaces.ErrInvalidArgument},
	}
	for _, prefix := range [][]byte{nil, []byte("x/")} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/prefix=%q", tt.name, prefix), func(t *testing.T) {
				l, _ := newLog(prefix)
				ctx := context.Background()
				var err error
				for _, r := range tt.reports {
					if e := l.Record(ctx, r); e != nil {
						err = e
					}
				}
				if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
					t.Fatalf("Record: %v, want %v", err, tt.wantErr)
				}
				got, err := l.Epoch(ctx, tt.epoch)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Fatalf("Epoch(%d) = %v, want %v", tt.epoch, got, tt.want)
				}
			})
		}
	}
}

// TestLayout pins the stored keys and values: plugins' stored data must
// stay readable across versions.
func TestLayout(t *testing.T) {
	l, kv := newLog(nil)
	ctx := context.Background()
	if err := l.Record(ctx, &interfaces.RecordWorkRequest{Epoch: 7, BatchID: []byte("batch"), Records: []interfaces.WorkRecord{
		rec(9, interfaces.WorkForwarded, 1), rec(9, interfaces.WorkDelivered, 2), rec(9, interfaces.WorkProbed, 3),
	}}); err != nil {
		t.Fatal(err)
	}
	n := node(9)
	id := sha256.Sum256([]byte("batch"))
	wkey := append(binary.BigEndian.AppendUint64([]byte{'w'}, 7), n[:]...)
	bkey := append(binary.BigEndian.AppendUint64([]byte{'b'}, 7), id[:]...)
	got, err := kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: ns, Keys: [][]byte{wkey, bkey}})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3}
	if !got.Found[0] || !bytes.Equal(got.Values[0], want) {
		t.Errorf("count = %x (found %v), want %x", got.Values[0], got.Found[0], want)
	}
	if !got.Found[1] || len(got.Values[1]) != 0 {
		t.Errorf("marker = %x (found %v), want empty", got.Values[1], got.Found[1])
	}
}

func TestCorruptCount(t *testing.T) {
	l, kv := newLog(nil)
	ctx := context.Background()
	n := node(1)
	key := append(binary.BigEndian.AppendUint64([]byte{'w'}, 1), n[:]...)
	if _, err := kv.KVPut(ctx, &interfaces.KVPutRequest{Namespace: ns, Entries: []interfaces.KVEntry{{Key: key, Value: []byte{1, 2, 3}}}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(ctx, &interfaces.RecordWorkRequest{Epoch: 1, Records: []interfaces.WorkRecord{rec(1, interfaces.WorkForwarded, 1)}}); err == nil {
		t.Error("Record over a 3-byte count succeeded")
	}
	if _, err := l.Epoch(ctx, 1); err == nil {
		t.Error("Epoch over a 3-byte count succeeded")
	}
	got, _ := kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: ns, Keys: [][]byte{key}})
	if !bytes.Equal(got.Values[0], []byte{1, 2, 3}) {
		t.Errorf("the corrupt count was overwritten: %x", got.Values[0])
	}
}

// TestConcurrent records from many goroutines on one KV, through
// separate Logs as separate processes would, each batch twice.
func TestConcurrent(t *testing.T) {
	kv := memkv.New()
	ctx := context.Background()
	const writers, batches = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches*2)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := &Log{KV: kv, Swapper: kv, Namespace: ns, Name: "test"}
			for b := range batches {
				req := &interfaces.RecordWorkRequest{Epoch: 3, BatchID: fmt.Appendf(nil, "%d/%d", w, b), Records: []interfaces.WorkRecord{
					rec(1, interfaces.WorkForwarded, 1), rec(byte(2+w%2), interfaces.WorkDelivered, 2),
				}}
				for range 2 {
					if err := l.Record(ctx, req); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := (&Log{KV: kv, Swapper: kv, Namespace: ns, Name: "test"}).Epoch(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []interfaces.NodeEarnings{
		{Node: node(1), Forwarded: writers * batches},
		{Node: node(2), Delivered: 2 * writers / 2 * batches},
		{Node: node(3), Delivered: 2 * writers / 2 * batches},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestSplit(t *testing.T) {
	max := ^uint64(0)
	tests := []struct {
		name  string
		nodes []interfaces.NodeEarnings
		pool  *big.Int
		want  []uint64
	}{
		{"empty", nil, big.NewInt(10), nil},
		{"no work leaves amounts", []interfaces.NodeEarnings{{Probed: 5, Amount: 9}}, big.NewInt(10), []uint64{9}},
		{"probes count as no work", []interfaces.NodeEarnings{{Forwarded: 1, Probed: 100}, {Delivered: 1}}, big.NewInt(10), []uint64{5, 5}},
		{"remainder unpaid", []interfaces.NodeEarnings{{Forwarded: 1}, {Forwarded: 1}, {Delivered: 1}}, big.NewInt(10), []uint64{3, 3, 3}},
		{"forwarded and delivered add", []interfaces.NodeEarnings{{Forwarded: 1, Delivered: 2}, {Forwarded: 1}}, big.NewInt(100), []uint64{75, 25}},
		{"no overflow in the product", []interfaces.NodeEarnings{{Forwarded: max}, {Forwarded: max}}, new(big.Int).SetUint64(max), []uint64{max / 2, max / 2}},
		{"capped", []interfaces.NodeEarnings{{Forwarded: 1}}, new(big.Int).Lsh(big.NewInt(1), 70), []uint64{max}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			Split(tt.nodes, tt.pool)
			for j, n := range tt.nodes {
				if n.Amount != tt.want[j] {
					t.Errorf("node %d: amount %d, want %d", j, n.Amount, tt.want[j])
				}
			}
		})
	}
}

func TestEarnings(t *testing.T) {
	errPool := errors.New("pool unreadable")
	tests := []struct {
		name    string
		record  bool
		pool    func(context.Context) (*big.Int, error)
		want    []uint64
		wantErr error
	}{
		{"no work, pool not read", false, func(context.Context) (*big.Int, error) { return nil, errPool }, nil, nil},
		{"nil pool leaves zero", true, nil, []uint64{0, 0}, nil},
		{"split", true, func(context.Context) (*big.Int, error) { return big.NewInt(40), nil }, []uint64{10, 30}, nil},
		{"pool error", true, func(context.Context) (*big.Int, error) { return nil, errPool }, nil, errPool},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := newLog(nil)
			ctx := context.Background()
			if tt.record {
				if err := l.Record(ctx, &interfaces.RecordWorkRequest{Epoch: 1, Records: []interfaces.WorkRecord{
					rec(1, interfaces.WorkForwarded, 1), rec(2, interfaces.WorkDelivered, 3),
				}}); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := l.Earnings(ctx, 1, "u", tt.pool)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Earnings: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if resp.Unit != "u" || len(resp.Nodes) != len(tt.want) {
				t.Fatalf("Earnings = %+v, want unit u and %d nodes", resp, len(tt.want))
			}
			for j, n := range resp.Nodes {
				if n.Amount != tt.want[j] {
					t.Errorf("node %d: amount %d, want %d", j, n.Amount, tt.want[j])
				}
			}
		})
	}
}
