package node

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons, the values of the "reason" label of sotto_packets_dropped_total.
const (
	dropOverload  = "overload"        // the pipeline's input queue was full
	dropInvalid   = "invalid"         // did not unwrap: bad MAC (or unknown epoch key), bad version, bad group element, bad commands
	dropPayload   = "payload"         // the final hop's payload tag was not zero (tagged on the way)
	dropReplay    = "replay"          // the replay tag was seen before
	dropReplayErr = "replay_store"    // the storage plugin could not record the tag: dropped, never released unrecorded
	dropDelay     = "delay"           // asked for a delay over mixing.max_delay
	dropQueueFull = "queue_full"      // the scheduler held its capacity
	dropNoRoute   = "no_route"        // the next hop is not in the document
	dropBadRoute  = "bad_route"       // the next hop is not in the next layer (stratified topology)
	dropLinkFull  = "link_full"       // the next hop's outbound queue was full
	dropLink      = "link"            // the next hop could not be reached, or the stream broke
	dropDecoy     = "decoy"           // a drop decoy reached its provider (expected cover traffic)
	dropNotForUs  = "not_deliverable" // a final hop on a node that cannot deliver it
	dropStorage   = "storage"         // the mailbox write failed
	dropShutdown  = "shutdown"        // still queued when the node stopped

	dropFirstHop     = "first_hop"        // a client's packet whose first hop was its last: mailboxes take only what crossed the mixes
	dropNotLastLayer = "not_last_layer"   // a final hop at a provider that came from a node other than a last-layer mix
	dropMailboxMsgs  = "mailbox_messages" // the mailbox held provider.mailbox_max_messages
	dropMailboxBytes = "mailbox_bytes"    // the payload would take the mailbox over provider.mailbox_max_mb
	dropAckRoute     = "ack_route"        // a SURB-ACK whose SURB does not start at a layer-0 mix (not sent)
)

// metrics are the node's Prometheus series.
type metrics struct {
	in          *prometheus.CounterVec // source: peer, client
	out         *prometheus.CounterVec // kind: forward, deliver, ack, loop
	dropped     *prometheus.CounterVec // reason
	replayHits  prometheus.Counter
	queueDepth  prometheus.GaugeFunc
	unwrap      prometheus.Histogram
	added       prometheus.Histogram
	pluginCall  *prometheus.HistogramVec // plugin, op
	refused     *prometheus.CounterVec   // streams cut, reason
	loopsSent   prometheus.Counter
	loopsBack   prometheus.Counter
	loopsLost   prometheus.Counter
	mailboxMsgs prometheus.Counter
	mailboxSize prometheus.Histogram
	epochGauge  prometheus.Gauge
	peers       prometheus.Gauge
	docNodes    prometheus.Gauge
	docInfo     *prometheus.GaugeVec
	docComplete prometheus.Gauge

	// Pre-resolved children, so the hot path does no label lookups.
	inPeer, inClient                        prometheus.Counter
	outForward, outDeliver, outAck, outLoop prometheus.Counter
	drop                                    map[string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, queueLen func() float64) *metrics {
	m := &metrics{
		in: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_packets_in_total", Help: "Packets received, by source (peer: a node over the mix protocol; client: through the client protocol).",
		}, []string{"source"}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_packets_out_total", Help: "Packets that left the pipeline, by kind (forward to the next hop, deliver to a mailbox, ack sent through a SURB, loop cover sent).",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_packets_dropped_total", Help: "Packets dropped, by reason.",
		}, []string{"reason"}),
		replayHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sotto_replay_hits_total", Help: "Packets whose replay tag was already recorded.",
		}),
		unwrap: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sotto_unwrap_seconds", Help: "Time of one Sphinx unwrap (all keys tried).",
			Buckets: prometheus.ExponentialBuckets(20e-6, 2, 10),
		}),
		added: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sotto_added_delay_seconds",
			Help: "For each forwarded packet, the time from when its frame was read to when it was flushed to the next hop's stream, less the NodeDelay it asked for: the latency the node adds (unwrap, replay commit, queues).",
			// 10 µs to about 1.3 s in steps of 25%, fine enough to read a
			// p99 below 1 ms off the buckets (docs/BENCHMARKS.md, "Node").
			Buckets: prometheus.ExponentialBuckets(10e-6, 1.25, 53),
		}),
		pluginCall: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sotto_node_plugin_call_seconds", Help: "Latency of the node pipeline's batched calls to its plugins as the node sees them (gRPC hop included), by plugin and operation.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}, []string{"plugin", "op"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sotto_streams_refused_total", Help: "Mix streams cut by the node, by reason (not_admitted, frame, read).",
		}, []string{"reason"}),
		loopsSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "sotto_mix_loops_sent_total", Help: "Mix loop cover packets sent."}),
		loopsBack: prometheus.NewCounter(prometheus.CounterOpts{Name: "sotto_mix_loops_returned_total", Help: "Mix loop cover packets that came back."}),
		loopsLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "sotto_mix_loops_lost_total", Help: "Mix loop cover packets that did not come back in time."}),
		mailboxMsgs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sotto_mailbox_appends_total", Help: "Messages stored in mailboxes.",
		}),
		mailboxSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sotto_mailbox_batch_messages", Help: "Messages per group-committed mailbox append.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		epochGauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sotto_epoch", Help: "The current epoch."}),
		peers:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "sotto_admitted_peers", Help: "Peers admitted to the mix protocol (nodes of the current documents)."}),
		docNodes:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "sotto_document_nodes", Help: "Nodes (this one included) in the node's PKI document for the current epoch; 0 without one."}),
		docInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sotto_document_info", Help: "1, labelled with the current epoch and the first 16 hex digits of its document's hash: nodes that agree show the same hash.",
		}, []string{"epoch", "hash"}),
		docComplete: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sotto_document_complete", Help: "1 when the current document has a mix in every layer and a provider (a path exists), else 0."}),
	}
	m.queueDepth = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sotto_queue_depth", Help: "Packets held by the Poisson scheduler.",
	}, queueLen)
	m.inPeer, m.inClient = m.in.WithLabelValues("peer"), m.in.WithLabelValues("client")
	m.outForward, m.outDeliver = m.out.WithLabelValues("forward"), m.out.WithLabelValues("deliver")
	m.outAck, m.outLoop = m.out.WithLabelValues("ack"), m.out.WithLabelValues("loop")
	m.drop = map[string]prometheus.Counter{}
	for _, r := range []string{dropOverload, dropInvalid, dropPayload, dropReplay, dropReplayErr, dropDelay, dropQueueFull,
		dropNoRoute, dropBadRoute, dropLinkFull, dropLink, dropDecoy, dropNotForUs, dropStorage, dropShutdown,
		dropFirstHop, dropNotLastLayer, dropMailboxMsgs, dropMailboxBytes, dropAckRoute} {
		m.drop[r] = m.dropped.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.in, m.out, m.dropped, m.replayHits, m.queueDepth, m.unwrap, m.added,
			m.pluginCall, m.refused, m.loopsSent, m.loopsBack, m.loopsLost, m.mailboxMsgs, m.mailboxSize, m.epochGauge, m.peers, m.docNodes, m.docInfo, m.docComplete} {
			reg.MustRegister(c)
		}
	}
	return m
}
