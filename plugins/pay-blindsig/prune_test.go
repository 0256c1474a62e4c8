package blindsig

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
)

func TestDeadPeriods(t *testing.T) {
	for _, tc := range []struct {
		key, grace, epoch, want uint64
	}{
		{1, 1, 0, 0}, {1, 1, 2, 0}, // period 0: tokens until epoch 2 (exclusive), its mark until 3
		{1, 1, 3, 1}, {1, 1, 10, 8},
		{4, 2, 6, 0}, {4, 2, 7, 1}, // period 0 = epochs 0..3, grace 4..5, kept through 6
		{4, 2, 10, 1}, {4, 2, 11, 2},
		{3, 0, 4, 1}, {3, 0, 3, 0},
	} {
		i := &Issuer{cfg: Config{KeyEpochs: tc.key, GraceEpochs: tc.grace}}
		if got := i.deadPeriods(tc.epoch); got != tc.want {
			t.Errorf("key %d grace %d epoch %d: %d dead periods, want %d", tc.key, tc.grace, tc.epoch, got, tc.want)
		}
		// The definition: every dead period's validity ended before
		// the epoch before e; the first live one's did not.
		for p := range tc.want {
			if _, until := i.validity(p); until >= tc.epoch {
				t.Errorf("key %d grace %d epoch %d: period %d counted dead, valid until %d", tc.key, tc.grace, tc.epoch, p, until)
			}
		}
		if _, until := i.validity(tc.want); until < tc.epoch {
			t.Errorf("key %d grace %d epoch %d: period %d (valid until %d) left alive", tc.key, tc.grace, tc.epoch, tc.want, until)
		}
	}
}

// keysWith counts the keys of kv's namespace under prefix p whose 8-byte
// number is n.
func keysWith(t *testing.T, kv interfaces.KV, p byte, n uint64) int {
	t.Helper()
	l, err := kv.KVList(context.Background(), &interfaces.KVListRequest{Namespace: Namespace, Prefix: binary.BigEndian.AppendUint64([]byte{p}, n)})
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Keys)
}

// Spent marks, issuer keys and free quotas are dropped once nothing can
// use them, and not before: a token whose mark is gone is still refused
// (its key's validity is over), and the live period's marks still stop
// a double spend.
func TestExpiredStateIsDropped(t *testing.T) {
	kv := memkv.New()
	seed(t, kv, Namespace)
	a := openOn(t, kv, testConfig()) // one epoch per key period, one of grace
	var toks [4][][]byte
	for e := range uint64(4) {
		var err error
		if toks[e], err = obtain(t, a, e, client(byte(e)), 3, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Spend two of each period's tokens in its own epoch.
	for e := range uint64(4) {
		for _, tok := range toks[e][:2] {
			if _, err := redeem(a, e, tok); err != nil {
				t.Fatalf("epoch %d: %v", e, err)
			}
		}
		a.waitPruned()
	}
	// At epoch 3, period 0 (tokens until epoch 2) is dead; period 1
	// (until 3) is kept one epoch more.
	for _, c := range []struct {
		p    byte
		n    uint64
		want int
	}{
		{'s', 0, 0}, {'k', 0, 0}, {'q', 0, 0}, {'q', 1, 0},
		{'s', 1, 2}, {'k', 1, 1}, {'q', 2, 1},
		{'s', 3, 2}, {'k', 3, 1}, {'q', 3, 1},
	} {
		if got := keysWith(t, kv, c.p, c.n); got != c.want {
			t.Errorf("%q keys of %d: %d, want %d", c.p, c.n, got, c.want)
		}
	}
	a.mu.Lock()
	_, loaded := a.keys[0]
	a.mu.Unlock()
	if loaded {
		t.Error("the dead period's key is still loaded")
	}
	// A spent token of the dead period is refused (no longer as a double
	// spend: its key is gone), and an unspent one too.
	for _, tok := range [][]byte{toks[0][0], toks[0][2]} {
		if r, err := redeem(a, 3, tok); !errors.Is(err, interfaces.ErrPaymentRequired) || r != nil {
			t.Fatalf("a dead period's token: %+v, %v; want payment required", r, err)
		}
	}
	// The live periods' marks still hold.
	if _, err := redeem(a, 3, toks[2][0]); !errors.Is(err, interfaces.ErrDoubleSpend) {
		t.Fatalf("a spent token of a kept period: %v, want a double spend", err)
	}
	if r, err := redeem(a, 3, toks[2][2]); err != nil || r.Granted == 0 {
		t.Fatalf("an unspent token in its grace epoch: %+v, %v", r, err)
	}
	a.waitPruned()
	// A later epoch drops period 1 and 2 as well, and nothing of period 3.
	if _, err := redeem(a, 5, toks[3][2]); !errors.Is(err, interfaces.ErrPaymentRequired) {
		t.Fatalf("period 3's token at epoch 5 (its validity ended at 5): %v", err)
	}
	tok5, err := obtain(t, a, 5, client(5), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := redeem(a, 5, tok5[0]); err != nil {
		t.Fatal(err)
	}
	a.waitPruned()
	for p := range uint64(3) {
		if got := keysWith(t, kv, 's', p) + keysWith(t, kv, 'k', p); got != 0 {
			t.Errorf("period %d: %d marks and keys left at epoch 5", p, got)
		}
	}
	if got := keysWith(t, kv, 's', 3); got != 2 {
		t.Errorf("period 3: %d marks at epoch 5, want 2 (kept through epoch 5)", got)
	}
}
