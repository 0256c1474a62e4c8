// Package node is the Sotto node: it joins the Sphinx packet format, the
// Poisson scheduler, the node's libp2p links and its plugins (PKI, storage,
// optionally accounting) into the program operators run as `sotto node`.
//
// The path of a packet through a node:
//
//	mix stream frame (link.Inbound) or client packet (provider) → input queue
//	→ Sphinx unwrap, spread over mixing.unwrap_workers goroutines, with the
//	  keys of every epoch still valid (current first)
//	→ replay check: a per-epoch in-memory set, then the tag is group-committed
//	  to the storage plugin (InsertReplayTags) before the packet goes on
//	→ Poisson scheduler, holding the packet for its NodeDelay
//	→ forward to the next hop's outbound link, or, at the final hop on a
//	  provider, a group-committed mailbox append (then the SURB-ACK), or drop.
//
// Every queue is bounded; a full queue drops the packet and counts the reason
// (sotto_packets_dropped_total). No plugin is called per packet: replay tags
// and mailbox writes go in batches, and PKI documents are fetched once per
// refresh. Mixes also send loop cover traffic at the document's λM and count
// the loops that return.
//
// A node learns its network from its PKI plugin: it publishes its signed
// descriptor for the current and next epoch, fetches the documents, admits to
// the mix protocol exactly the nodes of the documents it routes with, and
// rotates its Sphinx keys at epoch boundaries.
package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/mix"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/keystore"
	"github.com/sottonet/sotto/host/link"
	"github.com/sottonet/sotto/host/provider"
	"github.com/sottonet/sotto/interfaces"
)

// Options are what a node is made of. Config, Keys, Storage and PKI are
// required.
type Options struct {
	// Config is the node's validated config.
	Config *config.Config
	// Keys is the node's open keystore; the node rotates its Sphinx keys.
	Keys *keystore.Keystore
	// Storage keeps replay tags (every node) and mailboxes (providers).
	Storage interfaces.Storage
	// PKI publishes this node's descriptors and answers with documents.
	PKI interfaces.PKI
	// Accounting, if set, checks client credentials on a provider and
	// receives the node's work per epoch.
	Accounting interfaces.Accounting
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registry receives the node's metrics and is served on
	// Config.Metrics.Listen; nil makes a fresh one.
	Registry *prometheus.Registry
	// Rand is the randomness for keys, loops and delays; default crypto/rand.
	Rand io.Reader
	// Ready, if set, is called once the node routes: it holds a document,
	// admits its peers and serves its protocols.
	Ready func()
}

// ErrNoDocument: the PKI did not produce a document for the current epoch
// within the start timeout.
var ErrNoDocument = errors.New("node: no PKI document")

// Node is a running mix or provider.
type Node struct {
	opts  Options
	cfg   *config.Config
	log   *slog.Logger
	clk   epoch.Clock
	rand  io.Reader
	reg   *prometheus.Registry
	m     *metrics
	host  host.Host
	id    [32]byte // Sphinx node ID = Ed25519 identity public key
	role  interfaces.Role
	start time.Time

	pki      pkiState
	admitted link.PeerSet
	routes   atomic.Pointer[routeTable]
	keys     atomic.Pointer[keySet]

	// Set once the first document fixes the geometry.
	geo     *sphinx.Geometry
	pool    sync.Pool
	inMu    sync.RWMutex // senders hold R while sending; close holds W
	inClose bool
	in      chan *packet
	replay  chan *packet
	sched   *mix.Scheduler[*packet]
	// schedPub publishes sched to the metrics goroutine, which may scrape
	// before the first document sizes the pipeline.
	schedPub atomic.Pointer[mix.Scheduler[*packet]]
	deliver  chan *packet
	links    *links
	loops    *loops
	audit    *auditor // a provider's secret-shopper role, if configured
	audited  auditLog // what the auditor reported, for the metrics
	clients  *provider.Service
	work     workCounter
	bgWork   sync.WaitGroup // work reports under way
	// maxDelay is the longest NodeDelay accepted: mixing.max_delay, or
	// maxDelayMeans/μ of the current document if that is shorter, so that
	// senders cannot fill the scheduler with packets held for minutes.
	maxDelay atomic.Int64
	// docChanged is when the current epoch's document last changed
	// (UnixNano); mix loops wait until views have had time to agree.
	docChanged atomic.Int64
	// storageFault is when a storage write last failed (UnixNano), 0 once
	// one succeeds: clients' packets are refused meanwhile (storagefault.go).
	storageFault atomic.Int64

	metricsSrv *http.Server
	metricsLn  net.Listener

	logSeen sync.Map // key → *int64, last log time (logLimited)
	logMu   sync.Mutex

	readyOnce sync.Once
	ready     chan struct{}
}

// New checks its options and builds the node's libp2p host (listening at
// once) and metrics endpoint. Run starts the rest.
func New(opts Options) (*Node, error) {
	if opts.Config == nil || opts.Keys == nil || opts.Storage == nil || opts.PKI == nil {
		return nil, errors.New("node: Config, Keys, Storage and PKI are required")
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n := &Node{opts: opts, cfg: opts.Config, log: opts.Logger, rand: opts.Rand, reg: opts.Registry, ready: make(chan struct{})}
	if n.log == nil {
		n.log = slog.Default()
	}
	if n.rand == nil {
		n.rand = rand.Reader
	}
	if n.reg == nil {
		n.reg = prometheus.NewRegistry()
		n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	clk, err := epoch.New(n.cfg.Epoch.Genesis, n.cfg.Epoch.Period, n.cfg.Epoch.Grace)
	if err != nil {
		return nil, fmt.Errorf("node: epoch clock: %w", err)
	}
	n.clk = clk
	n.role = n.cfg.RoleValue()
	copy(n.id[:], opts.Keys.Identity().Public().(ed25519.PublicKey))
	n.m = newMetrics(n.reg, func() float64 {
		if s := n.schedPub.Load(); s != nil {
			return float64(s.Len())
		}
		return 0
	})
	if n.reg != nil {
		// How long the current document has been unchanged: a view that
		// keeps changing late in an epoch is gossip not converging.
		_ = n.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sotto_document_age_seconds", Help: "Seconds since the node's current PKI document last changed; 0 without one.",
		}, func() float64 {
			if t := n.docChanged.Load(); t != 0 {
				return time.Since(time.Unix(0, t)).Seconds()
			}
			return 0
		}))
	}
	key, err := opts.Keys.Libp2pKey()
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if n.cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", n.cfg.Metrics.Listen)
		if err != nil {
			return nil, fmt.Errorf("node: metrics listener: %w", err)
		}
		n.metricsLn = ln
	}
	h, err := link.NewHost(n.cfg, key)
	if err != nil {
		if n.metricsLn != nil {
			n.metricsLn.Close()
		}
		return nil, fmt.Errorf("node: %w", err)
	}
	n.host = h
	n.links = newLinks(n)
	n.work.on = opts.Accounting != nil
	_ = n.reg.Register(newEarningsCollector(n)) // sotto_rewards, for `sotto rewards`
	if _, err := io.ReadFull(n.rand, n.work.nonce[:]); err != nil {
		h.Close()
		return nil, fmt.Errorf("node: randomness: %w", err)
	}
	return n, nil
}

// Host is the node's libp2p host.
func (n *Node) Host() host.Host { return n.host }

// NodeID is the node's Sphinx node ID, its Ed25519 identity public key.
func (n *Node) NodeID() [32]byte { return n.id }

// MetricsAddr is the address /metrics is served on, or "" when disabled.
func (n *Node) MetricsAddr() string {
	if n.metricsLn == nil {
		return ""
	}
	return n.metricsLn.Addr().String()
}

// Registry is the node's metrics registry.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// Ready is closed once the node routes (see Options.Ready).
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Run runs the node until ctx ends, then shuts it down gracefully: it stops
// accepting packets, finishes the unwraps under way, commits their replay
// tags, counts what the scheduler still held as dropped (reason "shutdown"),
// flushes the mailbox writes and closes its links and host. It returns nil
// after a clean shutdown, or the error that stopped the node.
func (n *Node) Run(ctx context.Context) error {
	defer n.host.Close()
	if n.metricsLn != nil {
		n.metricsSrv = &http.Server{Handler: n.metricsHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = n.metricsSrv.Serve(n.metricsLn) }()
		defer n.metricsSrv.Close()
	}
	n.start = time.Now()
	pkiCtx, stopPKI := context.WithCancel(context.Background())
	defer stopPKI()
	if err := n.rotate(ctx, time.Now()); err != nil {
		return err
	}
	// The first document fixes the geometry; wait for it.
	rt, err := n.waitDocument(ctx)
	if err != nil {
		return err
	}
	if err := n.startPipeline(rt); err != nil {
		return err
	}
	if err := n.newClientService(); err != nil {
		return err
	}
	var bg sync.WaitGroup
	bg.Go(func() { n.pkiLoop(pkiCtx) })
	schedCtx, stopSched := context.WithCancel(context.Background())
	var leftover []*packet
	var schedDone sync.WaitGroup
	schedDone.Go(func() { leftover = n.sched.Run(schedCtx) })
	workers := n.startWorkers()
	var committer sync.WaitGroup
	committer.Go(n.replayLoop)
	var deliverer sync.WaitGroup
	if n.role == interfaces.RoleProvider {
		deliverer.Go(n.deliverLoop)
	}
	loopCtx, stopLoops := context.WithCancel(context.Background())
	if n.role == interfaces.RoleMix {
		bg.Go(func() { n.loops.run(loopCtx) })
	}
	if n.audit != nil {
		bg.Go(func() { n.audit.run(loopCtx) })
	}
	n.serve()
	n.log.Info("node routing", "role", n.role, "peer", n.host.ID(), "addrs", n.host.Addrs(), "epoch", n.clk.Now(),
		"packet_length", n.geo.PacketLength, "workers", n.cfg.Mixing.UnwrapWorkers, "metrics", n.MetricsAddr())
	n.readyOnce.Do(func() {
		close(n.ready)
		if n.opts.Ready != nil {
			n.opts.Ready()
		}
	})

	<-ctx.Done()
	n.log.Info("node stopping")
	// 1. Stop accepting: no new streams, no new client packets.
	n.unserve()
	n.inMu.Lock()
	n.inClose = true
	close(n.in)
	n.inMu.Unlock()
	// 2. Finish the unwraps under way and commit their replay tags.
	workers.Wait()
	close(n.replay)
	committer.Wait()
	// 3. Stop the scheduler: what it still holds is dropped.
	stopLoops()
	stopSched()
	schedDone.Wait()
	for _, p := range leftover {
		n.drop(p, dropShutdown)
	}
	if len(leftover) > 0 {
		n.log.Info("dropped queued packets at shutdown", "count", len(leftover))
	}
	// 4. Flush the mailbox writes (and their ACKs), then the links.
	if n.deliver != nil {
		close(n.deliver)
		deliverer.Wait()
	}
	stopPKI()
	bg.Wait()
	n.bgWork.Wait()
	n.reportWork(n.clk.Now(), true)
	n.links.close(5 * time.Second)
	n.log.Info("node stopped")
	return nil
}

func (n *Node) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "alive")
	})
	mux.HandleFunc("/readyz", n.readyz)
	return mux
}

// readyz answers 200 while the node routes (it said "node routing" and its
// current document still has a path: a mix in every layer and a
// provider), 503 with the reason otherwise.
func (n *Node) readyz(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-n.ready:
	default:
		http.Error(w, "not routing yet: waiting for a complete PKI document that lists this node", http.StatusServiceUnavailable)
		return
	}
	rt := n.routes.Load()
	var er *epochRoutes
	if rt != nil {
		er = rt.epochs[rt.current]
	}
	if er == nil {
		http.Error(w, fmt.Sprintf("no PKI document for the current epoch %d", n.clk.Now()), http.StatusServiceUnavailable)
		return
	}
	if err := er.topo.Complete(); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	age := time.Since(time.Unix(0, n.docChanged.Load())).Round(time.Second)
	fmt.Fprintf(w, "routing: epoch %d, document %x, %d nodes, unchanged for %v\n", er.epoch, er.hash[:8], len(er.byID), age)
}

// serve installs the node's stream handlers.
func (n *Node) serve() {
	in := &link.Inbound{
		Admitted:     &n.admitted,
		PacketLength: n.geo.PacketLength,
		Buffer:       func() link.Buffer { return n.getPacket() },
		Discard:      func(b link.Buffer) { n.putPacket(b.(*packet)) },
		Deliver:      n.deliverFromPeer,
		Refused:      n.refused,
	}
	n.host.SetStreamHandler(link.MixProtocol, in.Handle)
	n.serveClients()
}

func (n *Node) unserve() {
	n.host.RemoveStreamHandler(link.MixProtocol)
	n.unserveClients()
}
