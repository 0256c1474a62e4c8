package plugin

import (
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/plugintest"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

// A node-side plugin's state kept in the host KV survives a node restart:
// the accounting-free binary, offered a Badger store as the host KV,
// records work; everything is closed; a new plugin process on the same
// Badger directory reads the same Earnings and still counts the batch once.
func TestHostKVStateSurvivesANodeRestart(t *testing.T) {
	bin := plugintest.Build(t, "github.com/sottonet/sotto/examples/accounting-free/cmd/accounting-free")
	dir := t.TempDir()
	node := interfaces.NodeID{7}
	batch := &interfaces.RecordWorkRequest{Epoch: 12, BatchID: []byte("epoch 12 from node 7"), Records: []interfaces.WorkRecord{
		{Node: node, Kind: interfaces.WorkForwarded, Packets: 30},
		{Node: node, Kind: interfaces.WorkDelivered, Packets: 4},
	}}
	want := interfaces.NodeEarnings{Node: node, Forwarded: 30, Delivered: 4}

	// run starts a "node": the store and the plugin offered its KV; it
	// closes both before returning, as a node stopping would.
	run := func(what string, fn func(a interfaces.Accounting)) {
		t.Helper()
		cfg, err := storagebadger.ParseConfig(badgerConfig(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		store, err := storagebadger.Open(cfg)
		if err != nil {
			t.Fatalf("%s: opening Badger: %v", what, err)
		}
		defer func() {
			if err := store.Close(); err != nil {
				t.Errorf("%s: closing Badger: %v", what, err)
			}
		}()
		p, err := Start(t.Context(), Config{Name: "accounting", Kind: "accounting", Path: bin}, Options{Host: &interfaces.Host{KV: store}})
		if err != nil {
			t.Fatalf("%s: starting accounting-free: %v", what, err)
		}
		defer p.Close()
		fn(p.Accounting())
	}
	earnings := func(a interfaces.Accounting) []interfaces.NodeEarnings {
		t.Helper()
		e, err := a.Earnings(t.Context(), &interfaces.EarningsRequest{Epoch: 12})
		if err != nil {
			t.Fatal(err)
		}
		return e.Nodes
	}

	run("before the restart", func(a interfaces.Accounting) {
		if _, err := a.RecordWork(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
		if got := earnings(a); len(got) != 1 || got[0] != want {
			t.Fatalf("before the restart, Earnings = %+v, want [%+v]", got, want)
		}
	})
	run("after the restart", func(a interfaces.Accounting) {
		if got := earnings(a); len(got) != 1 || got[0] != want {
			t.Fatalf("after the restart, Earnings = %+v, want [%+v]", got, want)
		}
		if _, err := a.RecordWork(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
		if got := earnings(a); len(got) != 1 || got[0] != want {
			t.Errorf("the batch sent again after the restart was counted again: %+v, want [%+v]", got, want)
		}
	})
}
