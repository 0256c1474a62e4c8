package accountingfree

import (
	"context"
	"errors"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/accountingtest"
	"github.com/sottonet/sotto/interfaces/memkv"
	"github.com/sottonet/sotto/interfaces/plugintest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// reopeners remembers, per ledger a subtest opened, how to open it again
// on the same KV (the suite's Reopen hands back only the ledger).
type reopeners struct{ m sync.Map }

func (r *reopeners) open(t *testing.T, start func(t *testing.T) interfaces.Accounting) interfaces.Accounting {
	a := start(t)
	r.m.Store(a, start)
	return a
}

func (r *reopeners) options() accountingtest.Options {
	return accountingtest.Options{
		Credential: func(*testing.T, interfaces.Accounting) []byte { return []byte("anything goes") },
		Reopen: func(t *testing.T, a interfaces.Accounting) interfaces.Accounting {
			start, ok := r.m.Load(a)
			if !ok {
				t.Fatal("reopening a ledger the test did not open")
			}
			return r.open(t, start.(func(*testing.T) interfaces.Accounting))
		},
	}
}

func openOn(t *testing.T, kv interfaces.KV) *Free {
	t.Helper()
	f, err := Open(t.Context(), Config{}, kv)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestConformanceInProcess(t *testing.T) {
	var r reopeners
	accountingtest.Run(t, func(t *testing.T) interfaces.Accounting {
		kv := memkv.New()
		return r.open(t, func(t *testing.T) interfaces.Accounting { return openOn(t, kv) })
	}, r.options())
}

func TestConformanceOverGRPC(t *testing.T) {
	var r reopeners
	accountingtest.Run(t, func(t *testing.T) interfaces.Accounting {
		kv := memkv.New()
		return r.open(t, func(t *testing.T) interfaces.Accounting { return accountingtest.OverGRPC(t, openOn(t, kv)) })
	}, r.options())
}

// The plugin as its binary serves it (Plugin), configured by a host that
// offers a host KV, reached over go-plugin's broker; a restart is a new
// plugin configured with the same host KV.
func TestConformanceWithHostKV(t *testing.T) {
	var r reopeners
	accountingtest.Run(t, func(t *testing.T) interfaces.Accounting {
		host := &interfaces.Host{Slot: "accounting", KV: interfaces.SlotKV(memkv.New(), "accounting")}
		return r.open(t, func(t *testing.T) interfaces.Accounting {
			a, err := plugintest.Configure(t, Plugin(), nil, host)
			if err != nil {
				t.Fatal(err)
			}
			return a.(interfaces.Accounting)
		})
	}, r.options())
}

func TestPluginRefusesToStartWithoutAHostKV(t *testing.T) {
	_, err := plugintest.Configure(t, Plugin(), nil, &interfaces.Host{Slot: "accounting"})
	if !errors.Is(err, interfaces.ErrUnavailable) {
		t.Fatalf("Configure with no host KV: err = %v, want ErrUnavailable", err)
	}
}

func TestOpenRefusesAKVWithoutCompareAndSwap(t *testing.T) {
	type plainKV struct{ interfaces.KV } // hides memkv's KVSwap
	if _, err := Open(t.Context(), Config{}, plainKV{memkv.New()}); !errors.Is(err, interfaces.ErrUnavailable) {
		t.Fatalf("Open on a KV without KVSwap: err = %v, want ErrUnavailable", err)
	}
}

// A restart (a new Free on the same KV) keeps Earnings and the batches
// already counted, and concurrent reports through two ledgers on one KV
// (two processes) all count.
func TestRestartKeepsEarnings(t *testing.T) {
	ctx := context.Background()
	kv := memkv.New()
	n := interfaces.NodeID{9}
	first, second := openOn(t, kv), openOn(t, kv)
	var wg sync.WaitGroup
	for i := range 20 {
		f := first
		if i%2 == 1 {
			f = second
		}
		wg.Go(func() {
			if _, err := f.RecordWork(ctx, &interfaces.RecordWorkRequest{Epoch: 4, Records: []interfaces.WorkRecord{{Node: n, Kind: interfaces.WorkForwarded, Packets: 2}}}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	batch := &interfaces.RecordWorkRequest{Epoch: 4, BatchID: []byte("b1"), Records: []interfaces.WorkRecord{{Node: n, Kind: interfaces.WorkProbed, Packets: 5}}}
	if _, err := first.RecordWork(ctx, batch); err != nil {
		t.Fatal(err)
	}
	again := openOn(t, kv)
	if _, err := again.RecordWork(ctx, batch); err != nil {
		t.Fatal(err)
	}
	e, err := again.Earnings(ctx, &interfaces.EarningsRequest{Epoch: 4})
	if err != nil {
		t.Fatal(err)
	}
	want := interfaces.NodeEarnings{Node: n, Forwarded: 40, Probed: 5}
	if len(e.Nodes) != 1 || e.Nodes[0] != want {
		t.Fatalf("after a restart, Earnings = %+v, want [%+v]", e.Nodes, want)
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		want      uint64
		bad       bool
	}{
		{"empty config takes defaults", "", 0, false},
		{"max_grant is read", `{"max_grant": 7}`, 7, false},
		{"unknown keys are refused", `{"max_grnat": 7}`, 0, true},
		{"garbage is refused", `{`, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.raw))
			if tc.bad {
				if !errors.Is(err, interfaces.ErrInvalidArgument) {
					t.Fatalf("err = %v, want ErrInvalidArgument", err)
				}
				return
			}
			if err != nil || c.MaxGrant != tc.want {
				t.Fatalf("ParseConfig = %+v, %v; want MaxGrant %d", c, err, tc.want)
			}
		})
	}
}
