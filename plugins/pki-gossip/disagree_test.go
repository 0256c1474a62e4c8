package pkigossip

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// lockedBuffer is a log sink several goroutines write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// PKI members that disagree (docs/RELIABILITY.md). A hub member, the only
// one the four others dial (as a network's bootstrap member is), withholds
// its own descriptor from half of them: it does not gossip it, and its
// anti-entropy answers to those two leave it out (the package's test-only
// withhold fault; nothing outside this package can turn it on). What must
// hold:
//   - the views differ by document hash: the other half and the hub hold
//     one document, the withheld-from half another, one node short;
//   - the withheld-from members notice: their Disagreements count grows and
//     they log "PKI views differ" (the hub announces a state hash its
//     answers do not reach); the others do not;
//   - a client asking one member of each half gets ErrViewsDiffer from
//     FetchAgreed, and one view from members of one half;
//   - once the withholding stops, every member converges on one document
//     with all five nodes, the withheld-from members log "PKI views agree
//     again", and their count stops growing.
func TestMemberWithholdingItsDescriptorFromHalfIsNoticedAndViewsConverge(t *testing.T) {
	period := time.Minute
	cfg := testConfig(time.Now(), period)
	nodes := rolesFor(5)
	logs := make([]*lockedBuffer, 5)
	var members []*Member
	for i := range 5 {
		c := cfg
		if i > 0 {
			c.Bootstrap = members[0].Addrs()
		}
		logs[i] = &lockedBuffer{}
		m, err := New(t.Context(), c, WithLogger(slog.New(slog.NewTextHandler(logs[i], nil))))
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		t.Cleanup(func() { m.Close() })
		members = append(members, m)
	}
	hub, honest, deprived := members[0], members[1:3], members[3:5]
	deprivedIDs := []peer.ID{deprived[0].Host().ID(), deprived[1].Host().ID()}
	withhold := func(p peer.ID) bool { return slices.Contains(deprivedIDs, p) }
	hub.withhold.Store(&withhold)

	e := hub.Clock().Now() + 1
	publishAll(t, members, nodes, e, 0)

	// The views differ by hash: 5 nodes at the hub and the honest half, 4
	// at the deprived half (everyone's but the hub's).
	full, took := waitConverged(t, append([]*Member{hub}, honest...), e, 5, 20*time.Second)
	short, _ := waitConverged(t, deprived, e, 4, 20*time.Second)
	if full == short {
		t.Fatal("the two halves' documents have the same hash")
	}
	t.Logf("views differ after %v: %x (5 nodes) vs %x (4 nodes)", took.Round(time.Millisecond), full[:8], short[:8])
	for _, m := range deprived {
		if slices.ContainsFunc(docNodes(m, e), func(r []byte) bool {
			return bytes.Equal(r, nodes[0].descriptor(t, "testnet", e, 0).Raw)
		}) {
			t.Fatal("a deprived member holds the withheld descriptor")
		}
	}

	// The deprived members notice; the others have nothing to notice.
	waitFor(t, "the deprived members to count a disagreement", 10*time.Second, func() bool {
		return deprived[0].Stats().Disagreements > 0 && deprived[1].Stats().Disagreements > 0
	}, members...)
	for i := range deprived {
		if !strings.Contains(logs[3+i].String(), "PKI views differ") {
			t.Errorf("deprived member %d counted a disagreement but did not log it:\n%s", i, logs[3+i])
		}
	}
	for i, m := range append([]*Member{hub}, honest...) {
		if n := m.Stats().Disagreements; n != 0 {
			t.Errorf("member %d of the agreeing half counted %d disagreements", i, n)
		}
	}

	// A client asking a member of each half notices.
	client := bareHost(t)
	ask := func(ms ...*Member) ([32]byte, error) {
		var ids []peer.ID
		for _, m := range ms {
			if err := client.Connect(t.Context(), peer.AddrInfo{ID: m.Host().ID(), Addrs: m.Host().Addrs()}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, m.Host().ID())
		}
		_, h, err := FetchAgreed(t.Context(), client, ids, e)
		return h, err
	}
	if _, err := ask(honest[0], deprived[0]); !errors.Is(err, ErrViewsDiffer) {
		t.Fatalf("a client asking both halves: err %v, want ErrViewsDiffer", err)
	} else {
		t.Logf("client: %v", err)
	}
	if h, err := ask(deprived...); err != nil || h != short {
		t.Fatalf("a client asking the deprived half: hash %x, err %v", h[:8], err)
	}

	// The withholding stops: everyone converges on the full document.
	before := deprived[0].Stats().Disagreements
	hub.withhold.Store(nil)
	agreed, took := waitConverged(t, members, e, 5, 20*time.Second)
	if agreed != full {
		t.Fatalf("converged on %x, not the full document %x", agreed[:8], full[:8])
	}
	t.Logf("converged %v after the withholding stopped; deprived member 0 had counted %d disagreements", took.Round(time.Millisecond), before)
	if h, err := ask(members...); err != nil || h != full {
		t.Fatalf("a client asking every member after convergence: hash %x, err %v", h[:8], err)
	}
	waitFor(t, "the deprived members to log that views agree again", 10*time.Second, func() bool {
		return strings.Contains(logs[3].String(), "PKI views agree again") && strings.Contains(logs[4].String(), "PKI views agree again")
	}, members...)
	settled := deprived[0].Stats().Disagreements
	time.Sleep(5 * cfg.SyncInterval)
	if n := deprived[0].Stats().Disagreements; n != settled {
		t.Errorf("disagreements kept growing after convergence: %d → %d", settled, n)
	}
}
