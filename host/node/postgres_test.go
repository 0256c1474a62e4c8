package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/pgtest"
	storagepostgres "github.com/sottonet/sotto/plugins/storage-postgres"
)

// The node on storage-postgres: every node of a test network keeps its
// mailboxes and replay tags in a schema of its own of one database, as
// nodes sharing a database do (plugins/storage-postgres/README.md).

// postgresStorage opens each node's store in a fresh schema of dsn.
func postgresStorage(dsn string) func(t testing.TB, dir string) interfaces.Storage {
	return postgresStorageSync(dsn, true)
}

// postgresStorageSync is postgresStorage with synchronous_commit set.
func postgresStorageSync(dsn string, syncCommit bool) func(t testing.TB, dir string) interfaces.Storage {
	return func(t testing.TB, _ string) interfaces.Storage {
		cfg := storagepostgres.DefaultConfig(dsn)
		cfg.SynchronousCommit = syncCommit
		cfg.Schema = pgtest.Schema(t, dsn)
		cfg.MaxConns = 4
		cfg.ConnectTimeout = 2 * time.Second
		cfg.Logger = testLogger(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := storagepostgres.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// TestDeliveryExactlyOnceOnPostgres is TestDeliveryExactlyOnce with every
// node on PostgreSQL.
func TestDeliveryExactlyOnceOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	deliveryExactlyOnce(t, newTestNet(t, netSpec{mixes: 2, providers: 2, layers: 2, mu: 200, storage: postgresStorage(dsn)}))
}

// TestPacketsAreDroppedWhileTheDatabaseIsDown: the nodes' database (a
// cluster of the test's own) crashes. Packets arriving meanwhile cannot
// have their replay tags recorded: the gateway counts each as dropped
// (reason replay_store) and forwards none of them, and once a write has
// failed it refuses further client packets as busy ("storage
// unavailable") instead of taking them to drop. Once the database is
// back the same stores serve again without a restart of the node: a fresh
// packet is delivered, and a packet delivered before the crash, sent
// again, is still dropped as a replay: its tag outlived the crash.
func TestPacketsAreDroppedWhileTheDatabaseIsDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	c := pgtest.StartCluster(t)
	tn := newTestNet(t, netSpec{mixes: 2, providers: 2, layers: 2, mu: 200, storage: postgresStorage(c.DSN())})
	er := tn.route()
	gw, dst := er.providers[0], er.providers[1]
	gwNode, dstNode := tn.nodeByID(gw.id), tn.nodeByID(dst.id)
	g := gwNode.n.geo
	newMailbox := func() (mb [32]byte) { rand.Read(mb[:]); return mb }
	refused := 0
	send := func(mb [32]byte, body string) []byte {
		pkt := packetTo(t, g, tn.forwardPath(gw, dst, 5*time.Millisecond, &sphinx.Recipient{ID: mb}), nil, []byte(body))
		if err := gwNode.n.Inject(bytes.Clone(pkt)); errors.Is(err, errStorageRefused) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
		return pkt
	}

	before := newMailbox()
	early := send(before, "before the crash")
	waitFor(t, 10*time.Second, "the first message in its mailbox", func() bool {
		return len(fetchAll(t, dstNode.store, before)) == 1
	})

	c.Crash()
	during := newMailbox()
	const n = 5
	for range n {
		send(during, "while the database is down")
		time.Sleep(100 * time.Millisecond)
	}
	waitFor(t, 20*time.Second, "the gateway to drop or refuse the unchecked packets", func() bool {
		return dropped(t, gwNode, dropReplayErr)+float64(refused) >= n
	})
	if dropped(t, gwNode, dropReplayErr) == 0 {
		t.Error("no packet dropped for its replay tag during the outage")
	}
	if got := dropped(t, gwNode, dropReplay); got != 0 {
		t.Errorf("%v packets dropped as replays during the outage, want 0", got)
	}

	c.Start()
	after := newMailbox()
	waitFor(t, 30*time.Second, "a fresh packet delivered after the restart", func() bool {
		send(after, "after the restart")
		time.Sleep(300 * time.Millisecond)
		resp, err := dstNode.store.ListMailbox(context.Background(), &interfaces.ListMailboxRequest{Mailbox: after})
		return err == nil && len(resp.Entries) > 0
	})
	if err := gwNode.n.Inject(early); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the pre-crash packet to be dropped as a replay", func() bool {
		return dropped(t, gwNode, dropReplay) == 1
	})
	time.Sleep(300 * time.Millisecond)
	if got := len(fetchAll(t, dstNode.store, before)); got != 1 {
		t.Errorf("the pre-crash mailbox holds %d messages after the replay, want 1", got)
	}
	if got := len(fetchAll(t, dstNode.store, during)); got != 0 {
		t.Errorf("%d packets sent while the database was down were delivered, want 0 (dropped unchecked)", got)
	}
	t.Logf("dropped at the gateway: %v unchecked (replay_store), %v replays", dropped(t, gwNode, dropReplayErr), dropped(t, gwNode, dropReplay))
}

// BenchmarkNodePipelinePostgres is BenchmarkNodePipeline with every node
// on storage-postgres (the server of SOTTO_POSTGRES_DSN, on the same
// machine), synchronous_commit on: each replay-tag group commit waits for
// the WAL's flush.
//
//	go test -run '^$' -bench 'NodePipeline' -benchtime 1x ./host/node
func BenchmarkNodePipelinePostgres(b *testing.B) {
	benchPipelineOn(b, false, postgresStorage(pgtest.DSN(b)))
}

// BenchmarkNodePipelinePostgresAsyncCommit is BenchmarkNodePipelinePostgres
// with synchronous_commit off: a crash of the database server (not of the
// node) may lose the last commits' tags.
func BenchmarkNodePipelinePostgresAsyncCommit(b *testing.B) {
	benchPipelineOn(b, true, postgresStorageSync(pgtest.DSN(b), false))
}
