package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces"
)

// earningsCollector exposes what the node's accounting plugin says each
// node earned in the previous and the current epoch (Accounting.Earnings,
// asked at scrape time), so a rewards report can be gathered from a
// running network's metrics (`sotto rewards`), whatever the design.
type earningsCollector struct {
	n     *Node
	desc  *prometheus.Desc
	self  *prometheus.Desc
	audit *prometheus.Desc
	info  *prometheus.Desc
}

// earningsEpochs is how many epochs, the current one included, the
// metrics show: an auditor reports an epoch some seconds after its end.
const earningsEpochs = 4

func newEarningsCollector(n *Node) *earningsCollector {
	return &earningsCollector{n: n, desc: prometheus.NewDesc("sotto_rewards",
		"What this node's accounting plugin counts per node and epoch: work counted (forwarded, delivered), auditor probes sent through the node and returned (probes_sent, probed), and the amount earned (in the design's unit). The last four epochs.",
		[]string{"epoch", "node", "field", "unit"}, nil),
		self: prometheus.NewDesc("sotto_node_identity", "1, labelled with this node's ID (hex) and role, to name the nodes of sotto_rewards.",
			[]string{"node", "role"}, nil),
		audit: prometheus.NewDesc("sotto_audit_probes",
			"What this provider's secret-shopper auditor measured per mix and epoch: probes routed through the mix (probes_sent) and inferred to have crossed it (probed), as it reported them to its accounting plugin. A rewards gatherer takes the median over auditors. The last four epochs reported.",
			[]string{"epoch", "node", "field"}, nil),
		info: prometheus.NewDesc("sotto_accounting_info",
			"1, labelled with the scheme of this node's accounting plugin and its public parameters when they are short JSON (the secret shopper's budget, threshold and min_probes), so a rewards gatherer can settle a design's epochs.",
			[]string{"scheme", "params"}, nil)}
}

func (c *earningsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.self
	ch <- c.audit
	ch <- c.info
}

// maxInfoLabel bounds the accounting parameters shown as a label: a
// blind-signature issuer's key is not for a label.
const maxInfoLabel = 256

func (c *earningsCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.self, prometheus.GaugeValue, 1, hex.EncodeToString(c.n.id[:]), c.n.cfg.Role)
	c.n.audited.each(func(e epoch.Epoch, recs []interfaces.WorkRecord) {
		es := strconv.FormatUint(uint64(e), 10)
		for _, r := range recs {
			f := "probed"
			if r.Kind == interfaces.WorkProbeSent {
				f = "probes_sent"
			}
			ch <- prometheus.MustNewConstMetric(c.audit, prometheus.GaugeValue, float64(r.Packets), es, hex.EncodeToString(r.Node[:]), f)
		}
	})
	a := c.n.opts.Accounting
	if a == nil {
		return
	}
	cur := c.n.clk.At(time.Now())
	ictx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	info, err := a.Info(ictx, &interfaces.AccountingInfoRequest{Epoch: uint64(cur)})
	cancel()
	if err == nil {
		params := ""
		if len(info.Params) <= maxInfoLabel && utf8.Valid(info.Params) && json.Valid(info.Params) {
			params = string(info.Params)
		}
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, info.Scheme, params)
	}
	var epochs []epoch.Epoch
	for e := cur - min(cur, earningsEpochs-1); e <= cur; e++ {
		epochs = append(epochs, e)
	}
	for _, e := range epochs {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r, err := a.Earnings(ctx, &interfaces.EarningsRequest{Epoch: uint64(e)})
		cancel()
		if err != nil {
			c.n.logLimited("earnings", "cannot read earnings for metrics", "epoch", e, "err", err)
			continue
		}
		es := strconv.FormatUint(uint64(e), 10)
		for _, ne := range r.Nodes {
			id := hex.EncodeToString(ne.Node[:])
			for _, f := range []struct {
				name string
				v    uint64
			}{{"forwarded", ne.Forwarded}, {"delivered", ne.Delivered}, {"probes_sent", ne.ProbesSent}, {"probed", ne.Probed}, {"amount", ne.Amount}} {
				ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(f.v), es, id, f.name, r.Unit)
			}
		}
	}
}
