package plugin

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of all plugins of one host, registered once per registry.
type metrics struct {
	restarts *prometheus.CounterVec
	crashes  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	info     *prometheus.GaugeVec
}

var (
	metricsMu  sync.Mutex
	metricsFor = map[prometheus.Registerer]*metrics{}
)

func metricsOf(reg prometheus.Registerer) *metrics {
	metricsMu.Lock()
	defer metricsMu.Unlock()
	if m, ok := metricsFor[reg]; ok && reg != nil {
		return m
	}
	m := &metrics{
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sotto", Subsystem: "plugin", Name: "restarts_total",
			Help: "Plugin processes restarted after they died.",
		}, []string{"plugin"}),
		crashes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sotto", Subsystem: "plugin", Name: "crashes_total",
			Help: "Plugin processes that died while the host needed them.",
		}, []string{"plugin"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "sotto", Subsystem: "plugin", Name: "call_seconds",
			Help:    "Latency of calls into plugins.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 16),
		}, []string{"plugin", "method", "outcome"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "sotto", Subsystem: "plugin", Name: "info",
			Help: "1 for each running plugin, labelled with the name and version it reports.",
		}, []string{"plugin", "kind", "name", "version"}),
	}
	if reg != nil {
		reg.MustRegister(m.restarts, m.crashes, m.latency, m.info)
		metricsFor[reg] = m
	}
	return m
}
