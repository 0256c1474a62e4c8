package pkigossip

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/sottonet/sotto/interfaces"
)

// Members must stop every goroutine they start. libp2p's bandwidth meters
// share one process-wide sweeper that never stops; it is not ours.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"))
}

func TestStoreSurvivesATornLastRecordAndPrunes(t *testing.T) {
	dir := t.TempDir()
	s := newStore(dir)
	a := newNode(1, interfaces.RoleMix).descriptor(t, "testnet", 4, 0)
	b := newNode(2, interfaces.RoleMix).descriptor(t, "testnet", 4, 0)
	for _, sd := range []*interfaces.SignedDescriptor{a, b} {
		if v, err := s.add(sd); err != nil || v != verdictNew {
			t.Fatalf("add: %v %v", v, err)
		}
	}
	if v, _ := s.add(a); v != verdictDuplicate {
		t.Fatalf("re-adding the same bytes gave verdict %d", v)
	}
	// A crash in the middle of an append leaves a torn record.
	f, err := os.OpenFile(filepath.Join(dir, "epoch-4.desc"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0x01, 0x00, 0xAA})
	f.Close()
	recs, err := loadRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || string(recs[0]) != string(a.Raw) || string(recs[1]) != string(b.Raw) {
		t.Fatalf("loaded %d records", len(recs))
	}
	s.prune(5)
	if _, err := os.Stat(filepath.Join(dir, "epoch-4.desc")); !os.IsNotExist(err) {
		t.Fatalf("pruned epoch's file still there: %v", err)
	}
	if s.stateHash(4) != ([32]byte{}) {
		t.Fatal("pruned epoch still held")
	}
}

func TestStoreRefusesIdentitiesBeyondADocument(t *testing.T) {
	s := newStore("")
	s.maxNodes = 3
	for i := range 3 {
		if v, _ := s.add(newNode(uint64(i), interfaces.RoleMix).descriptor(t, "testnet", 1, 0)); v != verdictNew {
			t.Fatalf("descriptor %d: verdict %d", i, v)
		}
	}
	if v, _ := s.add(newNode(9, interfaces.RoleMix).descriptor(t, "testnet", 1, 0)); v != verdictFull {
		t.Fatalf("a fourth identity gave verdict %d, want full", v)
	}
	// A known identity can still equivocate and be caught.
	if v, _ := s.add(newNode(0, interfaces.RoleMix).descriptor(t, "testnet", 1, 1)); v != verdictEquivocation {
		t.Fatalf("equivocation in a full epoch gave verdict %d", v)
	}
	if _, _, err := s.document("testnet", 1, interfaces.NetworkParams{Hops: 1, PayloadLen: 1, Layers: 1, EpochPeriod: 1}); err != nil {
		t.Fatal(err)
	}
}
