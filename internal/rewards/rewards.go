// Package rewards gathers a rewards report from a running network: every
// node's metrics name it (sotto_node_identity) and, where it runs an
// accounting plugin, say what that plugin counts per node and epoch
// (sotto_rewards, from Accounting.Earnings). The report is one table per
// epoch, whatever the design: node, role, work counted, auditor probes
// sent and returned, amount.
package rewards

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"text/tabwriter"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Row is one node in one epoch, summed over every ledger that counted it.
type Row struct {
	Node       string // hex ID
	Name, Role string // Name from the caller's names, if any
	Forwarded  uint64
	Delivered  uint64
	ProbesSent uint64
	Probed     uint64
	Amount     uint64
}

// Table is one epoch.
type Table struct {
	Epoch uint64
	Unit  string
	Rows  []Row // ascending node ID
}

// Report accumulates scrapes.
type Report struct {
	roles  map[string]string
	names  map[string]string
	tables map[uint64]*Table
	rows   map[uint64]map[string]*Row
}

// New starts a report; names maps hex node IDs to display names (may be nil).
func New(names map[string]string) *Report {
	return &Report{roles: map[string]string{}, names: names, tables: map[uint64]*Table{}, rows: map[uint64]map[string]*Row{}}
}

// Scrape reads http://addr/metrics and adds it.
func (r *Report) Scrape(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("rewards: scraping %s: %w", addr, err)
	}
	defer resp.Body.Close()
	return r.Add(resp.Body)
}

// Add adds one node's metrics in the Prometheus text format.
func (r *Report) Add(rd io.Reader) error {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(bufio.NewReader(rd))
	if err != nil {
		return fmt.Errorf("rewards: reading metrics: %w", err)
	}
	if f := mf["sotto_node_identity"]; f != nil {
		for _, m := range f.Metric {
			l := labels(m)
			r.roles[l["node"]] = l["role"]
		}
	}
	f := mf["sotto_rewards"]
	if f == nil {
		return nil
	}
	for _, m := range f.Metric {
		l := labels(m)
		e, err := strconv.ParseUint(l["epoch"], 10, 64)
		if err != nil {
			continue
		}
		t := r.tables[e]
		if t == nil {
			t = &Table{Epoch: e, Unit: l["unit"]}
			r.tables[e] = t
			r.rows[e] = map[string]*Row{}
		}
		row := r.rows[e][l["node"]]
		if row == nil {
			row = &Row{Node: l["node"]}
			r.rows[e][l["node"]] = row
		}
		v := uint64(m.GetGauge().GetValue())
		switch l["field"] {
		case "forwarded":
			row.Forwarded += v
		case "delivered":
			row.Delivered += v
		case "probes_sent":
			row.ProbesSent += v
		case "probed":
			row.Probed += v
		case "amount":
			row.Amount += v
		}
	}
	return nil
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// Tables returns the report, oldest epoch first; every node seen is in
// every table (zeros where nothing was counted).
func (r *Report) Tables() []Table {
	var out []Table
	for _, e := range slices.Sorted(maps.Keys(r.tables)) {
		t := *r.tables[e]
		ids := map[string]bool{}
		for id := range r.rows[e] {
			ids[id] = true
		}
		for id := range r.roles {
			ids[id] = true
		}
		for _, id := range slices.Sorted(maps.Keys(ids)) {
			row := Row{Node: id}
			if p := r.rows[e][id]; p != nil {
				row = *p
			}
			row.Role, row.Name = r.roles[id], r.names[id]
			t.Rows = append(t.Rows, row)
		}
		out = append(out, t)
	}
	return out
}

// Write prints the tables.
func Write(w io.Writer, tables []Table) {
	for _, t := range tables {
		fmt.Fprintf(w, "epoch %d (amounts in %s)\n", t.Epoch, orDash(t.Unit))
		tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "node\trole\tforwarded\tdelivered\tprobes sent\tprobes back\tamount\t")
		for _, r := range t.Rows {
			name := r.Name
			if name == "" && len(r.Node) >= 12 {
				name = r.Node[:12]
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", name, orDash(r.Role), r.Forwarded, r.Delivered, r.ProbesSent, r.Probed, r.Amount)
		}
		tw.Flush()
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
