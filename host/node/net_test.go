package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/keystore"
	"github.com/sottonet/sotto/interfaces"
	pkigossip "github.com/sottonet/sotto/plugins/pki-gossip"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

// testNet is a small network of in-process nodes on 127.0.0.1 sharing one
// gossip PKI member (a real PKI, in process) with a Badger store each.
type testNet struct {
	t       testing.TB
	network string
	root    string
	logTo   io.Writer
	genesis time.Time
	period  time.Duration
	params  interfaces.NetworkParams
	noFsync bool
	storage func(t testing.TB, dir string) interfaces.Storage
	pki     *pkigossip.Member
	nodes   []*testNode
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type testNode struct {
	n     *Node
	cfg   *config.Config
	store interfaces.Storage
	keys  *keystore.Keystore
	errc  chan error
	stop  context.CancelFunc
}

type netSpec struct {
	mixes, providers int
	layers           int
	mu, lambdaM      float64
	period           time.Duration
	tweak            func(*config.Config)
	// noFsync opens every node's Badger store with SyncWrites off: a
	// commit then survives a crash of the process, not a power loss.
	noFsync bool
	// logTo, if set, receives every node's log, each line tagged
	// node=<index in tn.nodes>.
	logTo io.Writer
	// storage, if set, opens each node's store (closed by the net if it is
	// an io.Closer) instead of a Badger store in the node's directory.
	storage func(t testing.TB, dir string) interfaces.Storage
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SOTTO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newTestNet(t testing.TB, spec netSpec) *testNet {
	t.Helper()
	if spec.period == 0 {
		spec.period = time.Minute
	}
	root := t.TempDir() // made before Cleanup(tn.close), so removed after it
	tn := &testNet{t: t, network: "nodetest", period: spec.period, root: root,
		genesis: time.Now().Add(-time.Second).Truncate(time.Millisecond)}
	tn.params = newTestParams(spec)
	ctx, cancel := context.WithCancel(context.Background())
	tn.cancel = cancel
	m, err := pkigossip.New(ctx, pkigossip.Config{
		Network: tn.network, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Genesis: tn.genesis,
		EpochPeriod: spec.period, Grace: spec.period / 10, Params: tn.params,
	}, pkigossip.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	tn.pki = m
	t.Cleanup(tn.close)
	tn.logTo, tn.noFsync, tn.storage = spec.logTo, spec.noFsync, spec.storage
	for i := range spec.mixes {
		tn.add(config.RoleMix, i%spec.layers+1, spec.tweak)
	}
	for range spec.providers {
		tn.add(config.RoleProvider, 0, spec.tweak)
	}
	tn.waitReady()
	return tn
}

func (tn *testNet) nodeConfig(role string, layer int, dir string) *config.Config {
	c := config.Default()
	c.Role, c.Network, c.DataDir = role, tn.network, dir
	c.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	c.Mix.Layer = layer
	c.Epoch = config.Epoch{Genesis: tn.genesis, Period: tn.period, Grace: tn.period / 10}
	c.Plugins.PKI.Builtin = "pki-gossip"
	c.Plugins.Storage.Builtin = "storage-badger"
	c.Metrics.Listen = "127.0.0.1:0"
	c.Mixing.UnwrapWorkers = 2
	c.Mixing.QueueCapacity = 4096
	return &c
}

func (tn *testNet) add(role string, layer int, tweak func(*config.Config)) *testNode {
	t := tn.t
	dir, err := os.MkdirTemp(tn.root, "node")
	if err != nil {
		t.Fatal(err)
	}
	cfg := tn.nodeConfig(role, layer, dir)
	if tweak != nil {
		tweak(cfg)
	}
	ks, _, err := keystore.Init(dir, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var st interfaces.Storage
	if tn.storage != nil {
		st = tn.storage(t, dir)
	} else {
		scfg := storagebadger.DefaultConfig(dir + "/badger")
		scfg.SyncWrites = !tn.noFsync
		bst, err := storagebadger.Open(scfg)
		if err != nil {
			t.Fatal(err)
		}
		st = bst
	}
	tnode := &testNode{cfg: cfg, store: st, keys: ks, errc: make(chan error, 1)}
	tnode.start(t, tn)
	tn.nodes = append(tn.nodes, tnode)
	return tnode
}

func (tnode *testNode) start(t testing.TB, tn *testNet) {
	log := testLogger(t)
	if tn.logTo != nil {
		log = slog.New(slog.NewTextHandler(tn.logTo, nil)).With("node", len(tn.nodes))
	}
	n, err := New(Options{Config: tnode.cfg, Keys: tnode.keys, Storage: tnode.store, PKI: tn.pki, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	tnode.n = n
	ctx, cancel := context.WithCancel(context.Background())
	tnode.stop = cancel
	tn.wg.Go(func() { tnode.errc <- n.Run(ctx) })
}

// halt stops one node gracefully and returns Run's result.
func (tnode *testNode) halt() error {
	tnode.stop()
	select {
	case err := <-tnode.errc:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("node did not stop within 30s")
	}
}

// waitReady waits until every node routes with a document listing all of
// them.
func (tn *testNet) waitReady() {
	t := tn.t
	deadline := time.After(30 * time.Second)
	for _, tnode := range tn.nodes {
		select {
		case <-tnode.n.Ready():
		case err := <-tnode.errc:
			t.Fatalf("node stopped before it was ready: %v", err)
		case <-deadline:
			t.Fatal("nodes not ready within 30s")
		}
	}
	for {
		all := true
		for _, tnode := range tn.nodes {
			rt := tnode.n.routes.Load()
			er := rt.epochs[rt.current]
			if er == nil || len(er.byID) != len(tn.nodes) {
				all = false
			}
		}
		if all {
			return
		}
		select {
		case <-deadline:
			t.Fatal("nodes did not all see the full document within 30s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (tn *testNet) close() {
	for _, tnode := range tn.nodes {
		if tnode.stop != nil {
			tnode.stop()
		}
	}
	tn.wg.Wait()
	for _, tnode := range tn.nodes {
		if c, ok := tnode.store.(io.Closer); ok {
			c.Close()
		}
		tnode.keys.Close()
	}
	tn.pki.Close()
	tn.cancel()
}

// route is the current document as the first node sees it.
func (tn *testNet) route() *epochRoutes {
	rt := tn.nodes[0].n.routes.Load()
	return rt.epochs[rt.current]
}

// nodeByID finds the test node with Sphinx ID id.
func (tn *testNet) nodeByID(id [32]byte) *testNode {
	for _, tnode := range tn.nodes {
		if tnode.n.id == id {
			return tnode
		}
	}
	tn.t.Fatalf("no node %x", id[:4])
	return nil
}

// pathHop is a hop of a test path, with its key for the current epoch.
func pathHop(t testing.TB, h *hop, e uint64, cmds ...sphinx.Command) sphinx.PathHop {
	k, ok := h.desc.SphinxKey(e)
	if !ok {
		t.Fatalf("no key for epoch %d", e)
	}
	pub, err := sphinx.NewPublicKey(k[:])
	if err != nil {
		t.Fatal(err)
	}
	return sphinx.PathHop{ID: h.id, PublicKey: pub, Commands: cmds}
}

// forwardPath is gateway provider → one mix per layer → destination provider,
// with the given per-hop delay and final commands.
func (tn *testNet) forwardPath(gw, dst *hop, delay time.Duration, final ...sphinx.Command) []sphinx.PathHop {
	er := tn.route()
	d := &sphinx.NodeDelay{Delay: uint32(delay / time.Millisecond)}
	path := []sphinx.PathHop{pathHop(tn.t, gw, er.epoch, d)}
	for _, layer := range er.layers {
		path = append(path, pathHop(tn.t, layer[0], er.epoch, d))
	}
	return append(path, pathHop(tn.t, dst, er.epoch, final...))
}

// fetchAll returns the messages of a provider's mailbox.
func fetchAll(t testing.TB, st interfaces.Storage, mb interfaces.MailboxID) []clientproto.Message {
	t.Helper()
	resp, err := st.FetchMailbox(context.Background(), &interfaces.FetchMailboxRequest{Mailbox: mb})
	if err != nil {
		t.Fatal(err)
	}
	var out []clientproto.Message
	for _, e := range resp.Entries {
		sm, err := clientproto.ParseStored(e.Payload)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, clientproto.Message{ID: e.ID, Expires: e.Expires, StoredMessage: sm})
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// value reads a counter or gauge.
func value(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatal("not a counter or gauge")
	return 0
}
