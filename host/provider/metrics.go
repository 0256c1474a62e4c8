package provider

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sottonet/sotto/core/clientproto"
)

// metrics are the service's Prometheus metrics, all named sotto_provider_*.
type metrics struct {
	requests        *prometheus.CounterVec   // op, result
	duration        *prometheus.HistogramVec // op
	packetsAccepted *prometheus.CounterVec   // route: inject, forward
	fetchedBytes    prometheus.Counter
	entriesReturned prometheus.Counter
	corruptEntries  prometheus.Counter
	streams         prometheus.Gauge
	replyBytes      prometheus.Gauge
	streamsRefused  *prometheus.CounterVec // reason
	streamsReset    *prometheus.CounterVec // reason
	streamsEvicted  *prometheus.CounterVec // reason: the table that was full
	rateLimited     *prometheus.CounterVec // scope: client, ip
	allowanceWrites prometheus.Counter     // storage calls writing allowances
	downstreams     prometheus.Gauge
	pushFrames      prometheus.Counter
	pushSlots       *prometheus.CounterVec // kind: message, dummy
	pushAcks        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "sotto", "provider"
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "Client requests served, by operation and result (ok or the error code).",
		}, []string{"op", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "request_duration_seconds",
			Help:    "Time to serve a client request, by operation.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 4, 10),
		}, []string{"op"}),
		packetsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "packets_accepted_total",
			Help: "Client packets accepted, by route: inject (this provider is the first hop) or forward (a SURB reply's first hop).",
		}, []string{"route"}),
		fetchedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "fetched_bytes_total",
			Help: "Bytes of stored messages returned to clients.",
		}),
		entriesReturned: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "mailbox_entries_returned_total",
			Help: "Mailbox entries returned to clients.",
		}),
		corruptEntries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "corrupt_entries_total",
			Help: "Mailbox entries skipped because they do not parse as stored messages.",
		}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "client_streams",
			Help: "Client streams open.",
		}),
		replyBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "reply_bytes",
			Help: "Bytes of client replies being built or waiting to be written (bounded by ReplyBytes).",
		}),
		streamsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "client_streams_refused_total",
			Help: "Client streams reset on arrival, by reason.",
		}, []string{"reason"}),
		streamsReset: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "client_streams_reset_total",
			Help: "Client streams reset while served, by reason.",
		}, []string{"reason"}),
		streamsEvicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "client_streams_evicted_total",
			Help: "Idle client streams reset to make room for a newcomer, by the table that was full (max_streams, max_streams_per_ip).",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sends_rate_limited_total",
			Help: "Sends answered busy because the client's (scope=client) or its address's (scope=ip) send rate was exceeded.",
		}, []string{"scope"}),
		allowanceWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "allowance_writes_total",
			Help: "Storage calls writing client allowances (one per grant, one per batch of spending).",
		}),
		downstreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "downstreams",
			Help: "Pushed downstreams open (subscribed clients).",
		}),
		pushFrames: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "push_frames_total",
			Help: "Push frames written to subscribed clients.",
		}),
		pushSlots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "push_slots_total",
			Help: "Slots of push frames written, by kind: message or dummy (padding).",
		}, []string{"kind"}),
		pushAcks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "push_acks_total",
			Help: "Mailbox entries acknowledged by subscribed clients' pulses.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.requests, m.duration, m.packetsAccepted, m.fetchedBytes, m.entriesReturned,
		m.corruptEntries, m.streams, m.replyBytes, m.streamsRefused, m.streamsReset, m.streamsEvicted, m.rateLimited,
		m.allowanceWrites,
		m.downstreams, m.pushFrames, m.pushSlots, m.pushAcks,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) request(op clientproto.Op, code clientproto.Code, d time.Duration) {
	name := op.String()
	if strings.HasPrefix(name, "op_") {
		name = "unknown" // bound the label's values
	}
	m.requests.WithLabelValues(name, code.String()).Inc()
	if d > 0 {
		m.duration.WithLabelValues(name).Observe(d.Seconds())
	}
}
