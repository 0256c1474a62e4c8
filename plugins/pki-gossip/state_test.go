package pkigossip

import (
	"crypto/sha256"
	"math/rand/v2"
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
		if v, err := s.add(sd, msgOf(sd), nil, 0); err != nil || v != verdictNew {
			t.Fatalf("add: %v %v", v, err)
		}
	}
	if v, _ := s.add(a, msgOf(a), nil, 0); v != verdictDuplicate {
		t.Fatalf("re-adding the same bytes gave verdict %d", v)
	}
	// A crash in the middle of an append leaves a torn record.
	f, err := os.OpenFile(filepath.Join(dir, "epoch-4"+stateSuffix), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0x00, 0x02, 0xAA, 0xBB, 0x20, 0x01})
	f.Close()
	recs, err := loadRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || string(recs[0].msg) != string(msgOf(a)) || string(recs[1].msg) != string(msgOf(b)) {
		t.Fatalf("loaded %d records", len(recs))
	}
	s.prune(5)
	if _, err := os.Stat(filepath.Join(dir, "epoch-4"+stateSuffix)); !os.IsNotExist(err) {
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
		sd := newNode(uint64(i), interfaces.RoleMix).descriptor(t, "testnet", 1, 0)
		if v, _ := s.add(sd, msgOf(sd), nil, 0); v != verdictNew {
			t.Fatalf("descriptor %d: verdict %d", i, v)
		}
	}
	fourth := newNode(9, interfaces.RoleMix).descriptor(t, "testnet", 1, 0)
	if v, _ := s.add(fourth, msgOf(fourth), nil, 0); v != verdictFull {
		t.Fatalf("a fourth identity gave verdict %d, want full", v)
	}
	// A known identity can still equivocate and be caught.
	face := newNode(0, interfaces.RoleMix).descriptor(t, "testnet", 1, 1)
	if v, _ := s.add(face, msgOf(face), nil, 0); v != verdictEquivocation {
		t.Fatalf("equivocation in a full epoch gave verdict %d", v)
	}
	if _, _, err := s.document("testnet", 1, interfaces.NetworkParams{Hops: 1, PayloadLen: 1, Layers: 1, EpochPeriod: 1}); err != nil {
		t.Fatal(err)
	}
}

// Under a ranked cap every member ends up holding the same identities
// (the lowest ranks) whatever order they arrive in.
func TestStoreUnderACapKeepsTheLowestRanksInAnyOrder(t *testing.T) {
	const capacity = 4
	type cand struct {
		sd   *interfaces.SignedDescriptor
		rank []byte
	}
	var cands []cand
	for i := range 12 {
		sd := newNode(uint64(100+i), interfaces.RoleMix).descriptor(t, "testnet", 1, 0)
		r := sha256.Sum256(sd.Raw)
		cands = append(cands, cand{sd, r[:]})
	}
	var want [32]byte
	for trial := range 5 {
		rng := rand.New(rand.NewPCG(uint64(trial), 9))
		rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		s := newStore("")
		for _, c := range cands {
			if _, err := s.add(c.sd, msgOf(c.sd), c.rank, capacity); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(s.raws(1)); n != capacity {
			t.Fatalf("trial %d: %d identities held, cap %d", trial, n, capacity)
		}
		if len(s.messages(1)) != capacity {
			t.Fatalf("trial %d: messages and descriptors disagree", trial)
		}
		h := s.stateHash(1)
		if trial == 0 {
			want = h
		} else if h != want {
			t.Fatalf("trial %d: arrival order changed what is held", trial)
		}
	}
	// An equivocator gives up its place.
	s := newStore("")
	a := newNode(7, interfaces.RoleMix)
	s.add(a.descriptor(t, "testnet", 1, 0), []byte("m0"), []byte{0}, 1)
	if v, _ := s.add(a.descriptor(t, "testnet", 1, 1), []byte("m1"), []byte{0}, 1); v != verdictEquivocation {
		t.Fatalf("verdict %d, want equivocation", v)
	}
	other := newNode(8, interfaces.RoleMix).descriptor(t, "testnet", 1, 0)
	if v, _ := s.add(other, msgOf(other), []byte{0xff}, 1); v != verdictNew {
		t.Fatalf("after an equivocation the cap still counted the equivocator: verdict %d", v)
	}
	if len(s.messages(1)) != 3 {
		t.Fatal("evidence faces lost their messages")
	}
}
