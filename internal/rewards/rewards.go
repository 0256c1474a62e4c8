// Package rewards gathers a rewards report from a running network: every
// node's metrics name it (sotto_node_identity) and, where it runs an
// accounting plugin, say what that plugin counts per node and epoch
// (sotto_rewards, from Accounting.Earnings) and which design it runs
// (sotto_accounting_info); a provider that audits says what its auditor
// measured per mix (sotto_audit_probes). The report is one table per
// epoch, whatever the design: node, role, work counted, auditor probes
// sent and returned, score, amount.
//
// Every ledger (one per node running an accounting plugin) hears only its
// own node, so the report settles each epoch across them, as one ledger
// for the whole network would (docs/ACCOUNTING.md, "How the report
// settles an epoch"):
//   - secret shopper (a ledger of scheme "shopper"): a mix's score is the
//     median, over the auditors that routed at least min_probes probes
//     through it, of probes back / probes sent; the budgets of every
//     shopper ledger are split by plugins/pay-shopper's Split (nobody below
//     the threshold earns anything). With three auditors or more, one
//     lying auditor cannot move a score outside the honest auditors' range.
//   - every other design: the pool is what every ledger pays for the epoch
//     (the sum of their amounts: tokens or vouchers redeemed at gateways),
//     split by the work every node reported to its own ledger
//     (interfaces/worklog's Split: forwarded plus delivered), so mixes,
//     which redeem nothing, are paid from what gateways collected.
package rewards

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/worklog"
	shopper "github.com/sottonet/sotto/plugins/pay-shopper"
)

// Audit is one auditor's measurement of one node in one epoch.
type Audit struct {
	Auditor    string // hex ID of the auditing provider
	Sent, Back uint64
}

// Row is one node in one epoch.
type Row struct {
	Node       string // hex ID
	Name, Role string // Name from the caller's names, if any
	// Forwarded and Delivered: what the node reported to its own ledger
	// (summed over every ledger that counted it).
	Forwarded uint64
	Delivered uint64
	// ProbesSent and Probed: summed over every auditor's measurement
	// (Audits) when auditors export them, else over the ledgers.
	ProbesSent uint64
	Probed     uint64
	// Audits are the auditors' measurements, ascending auditor ID.
	Audits []Audit
	// Score is the median over the auditors that counted (Auditors of
	// them: at least min_probes probes sent), under the secret shopper;
	// Auditors is 0 when nothing scored the node.
	Score    float64
	Auditors int
	// Amount is what the node earns in the epoch, settled across ledgers
	// (see the package doc); LedgerAmount what its own ledgers said.
	Amount       uint64
	LedgerAmount uint64
}

// Table is one epoch.
type Table struct {
	Epoch uint64
	Unit  string
	// Settlement says how the amounts were found: "shopper" (Budget split
	// by median scores at Threshold) or "work" (Pool split by work).
	Settlement string
	Budget     uint64
	Threshold  float64
	Pool       uint64
	Rows       []Row // ascending node ID
}

// shopperUnit is the unit of plugins/pay-shopper's amounts.
const shopperUnit = "micro-reward"

// ledger is what one scraped node's accounting plugin says.
type ledger struct {
	scheme string
	cfg    *shopper.Config // when the scheme is the shopper's
	unit   map[uint64]string
	rows   map[uint64]map[string]*Row
}

// Report accumulates scrapes.
type Report struct {
	roles   map[string]string
	names   map[string]string
	ledgers map[string]*ledger                      // by the scraped node's ID
	audits  map[string]map[uint64]map[string]*Audit // auditor → epoch → node
	anon    int
}

// New starts a report; names maps hex node IDs to display names (may be nil).
func New(names map[string]string) *Report {
	return &Report{roles: map[string]string{}, names: names, ledgers: map[string]*ledger{},
		audits: map[string]map[uint64]map[string]*Audit{}}
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

// Add adds one node's metrics in the Prometheus text format. A node added
// twice (the same identity) replaces what it said before: scraping a node
// twice counts it once.
func (r *Report) Add(rd io.Reader) error {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(bufio.NewReader(rd))
	if err != nil {
		return fmt.Errorf("rewards: reading metrics: %w", err)
	}
	self := ""
	if f := mf["sotto_node_identity"]; f != nil {
		for _, m := range f.Metric {
			l := labels(m)
			r.roles[l["node"]] = l["role"]
			self = l["node"]
		}
	}
	if self == "" {
		r.anon++
		self = fmt.Sprintf("#%d", r.anon)
	}
	if f := mf["sotto_audit_probes"]; f != nil {
		a := map[uint64]map[string]*Audit{}
		for _, m := range f.Metric {
			l := labels(m)
			e, err := strconv.ParseUint(l["epoch"], 10, 64)
			if err != nil {
				continue
			}
			if a[e] == nil {
				a[e] = map[string]*Audit{}
			}
			x := a[e][l["node"]]
			if x == nil {
				x = &Audit{Auditor: self}
				a[e][l["node"]] = x
			}
			v := value(m)
			switch l["field"] {
			case "probes_sent":
				x.Sent = v
			case "probed":
				x.Back = v
			}
		}
		r.audits[self] = a
	}
	led := &ledger{unit: map[uint64]string{}, rows: map[uint64]map[string]*Row{}}
	if f := mf["sotto_accounting_info"]; f != nil {
		for _, m := range f.Metric {
			l := labels(m)
			led.scheme = l["scheme"]
			if led.scheme == shopper.Scheme {
				var c shopper.Config
				if err := json.Unmarshal([]byte(l["params"]), &c); err != nil {
					return fmt.Errorf("rewards: node %s: shopper parameters %q: %w", self, l["params"], err)
				}
				led.cfg = &c
			}
		}
	}
	if f := mf["sotto_rewards"]; f != nil {
		for _, m := range f.Metric {
			l := labels(m)
			e, err := strconv.ParseUint(l["epoch"], 10, 64)
			if err != nil {
				continue
			}
			if led.rows[e] == nil {
				led.rows[e] = map[string]*Row{}
				led.unit[e] = l["unit"]
			}
			row := led.rows[e][l["node"]]
			if row == nil {
				row = &Row{Node: l["node"]}
				led.rows[e][l["node"]] = row
			}
			v := value(m)
			switch l["field"] {
			case "forwarded":
				row.Forwarded = v
			case "delivered":
				row.Delivered = v
			case "probes_sent":
				row.ProbesSent = v
			case "probed":
				row.Probed = v
			case "amount":
				row.Amount = v
			}
		}
	}
	if led.scheme != "" || len(led.rows) > 0 {
		r.ledgers[self] = led
	} else {
		delete(r.ledgers, self)
	}
	return nil
}

// value is a sample's value, whatever its type (a node says gauge; a
// file written by hand may say nothing).
func value(m *dto.Metric) uint64 {
	switch {
	case m.Gauge != nil:
		return uint64(m.Gauge.GetValue())
	case m.Counter != nil:
		return uint64(m.Counter.GetValue())
	}
	return uint64(m.GetUntyped().GetValue())
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// Tables returns the report, oldest epoch first, each epoch settled across
// ledgers (see the package doc); every node seen is in every table (zeros
// where nothing was counted).
func (r *Report) Tables() []Table {
	epochs := map[uint64]bool{}
	for _, l := range r.ledgers {
		for e := range l.rows {
			epochs[e] = true
		}
	}
	for a, m := range r.audits {
		if r.roles[a] != "provider" {
			continue
		}
		for e := range m {
			epochs[e] = true
		}
	}
	var out []Table
	for _, e := range slices.Sorted(maps.Keys(epochs)) {
		out = append(out, r.table(e))
	}
	return out
}

func (r *Report) table(e uint64) Table {
	t := Table{Epoch: e}
	rows := map[string]*Row{}
	row := func(id string) *Row {
		if rows[id] == nil {
			rows[id] = &Row{Node: id}
		}
		return rows[id]
	}
	for id := range r.roles {
		row(id)
	}
	var shop []*shopper.Config
	for _, k := range slices.Sorted(maps.Keys(r.ledgers)) {
		l := r.ledgers[k]
		if l.cfg != nil {
			shop = append(shop, l.cfg)
		}
		// A paying ledger names the unit; the work ledgers' "none" only
		// when no ledger pays.
		if u := l.unit[e]; t.Unit == "" || (t.Unit == "none" && u != "") {
			t.Unit = u
		}
		for id, lr := range l.rows[e] {
			x := row(id)
			x.Forwarded += lr.Forwarded
			x.Delivered += lr.Delivered
			x.ProbesSent += lr.ProbesSent
			x.Probed += lr.Probed
			x.LedgerAmount += lr.Amount
		}
	}
	// Auditors' own measurements replace the ledgers' sums of probes:
	// only providers audit.
	audited := false
	for _, a := range slices.Sorted(maps.Keys(r.audits)) {
		if r.roles[a] != "provider" {
			continue
		}
		for id, m := range r.audits[a][e] {
			x := row(id)
			audited = true
			x.Audits = append(x.Audits, *m)
		}
	}
	for _, x := range rows {
		if audited {
			x.ProbesSent, x.Probed = 0, 0
			for _, a := range x.Audits {
				x.ProbesSent += a.Sent
				x.Probed += a.Back
			}
		}
	}
	if len(shop) > 0 {
		t.Settlement, t.Threshold, t.Unit = shopper.Scheme, shop[0].Threshold, shopperUnit
		for _, c := range shop {
			t.Budget += c.Budget
		}
		scores := map[interfaces.NodeID]float64{}
		byID := map[interfaces.NodeID]*Row{}
		for _, x := range rows {
			var v []float64
			for _, a := range x.Audits {
				if a.Sent >= shop[0].MinProbes && a.Sent > 0 {
					v = append(v, min(1, float64(a.Back)/float64(a.Sent)))
				}
			}
			x.Auditors = len(v)
			if len(v) == 0 {
				continue
			}
			x.Score = shopper.Median(v)
			id, err := nodeID(x.Node)
			if err != nil {
				continue
			}
			scores[id], byID[id] = x.Score, x
		}
		for id, a := range shopper.Split(t.Budget, t.Threshold, scores) {
			byID[id].Amount = a
		}
	} else {
		t.Settlement = "work"
		ids := slices.Sorted(maps.Keys(rows))
		ne := make([]interfaces.NodeEarnings, len(ids))
		for j, id := range ids {
			t.Pool += rows[id].LedgerAmount
			ne[j] = interfaces.NodeEarnings{Forwarded: rows[id].Forwarded, Delivered: rows[id].Delivered}
		}
		worklog.Split(ne, new(big.Int).SetUint64(t.Pool))
		for j, id := range ids {
			rows[id].Amount = ne[j].Amount
		}
	}
	for _, id := range slices.Sorted(maps.Keys(rows)) {
		x := *rows[id]
		x.Role, x.Name = r.roles[id], r.names[id]
		slices.SortFunc(x.Audits, func(a, b Audit) int { return strings.Compare(a.Auditor, b.Auditor) })
		t.Rows = append(t.Rows, x)
	}
	return t
}

func nodeID(hx string) (interfaces.NodeID, error) {
	var id interfaces.NodeID
	b, err := hex.DecodeString(hx)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("node ID %q is not %d hex digits", hx, 2*len(id))
	}
	copy(id[:], b)
	return id, nil
}

// Write prints the tables.
func Write(w io.Writer, tables []Table) {
	for _, t := range tables {
		switch t.Settlement {
		case shopper.Scheme:
			fmt.Fprintf(w, "epoch %d (amounts in %s; secret shopper: budget %d split by the median over auditors, none below %.2f)\n",
				t.Epoch, orDash(t.Unit), t.Budget, t.Threshold)
		default:
			fmt.Fprintf(w, "epoch %d (amounts in %s; the ledgers' pool %d split by work reported)\n", t.Epoch, orDash(t.Unit), t.Pool)
		}
		tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "node\trole\tforwarded\tdelivered\tprobes sent\tprobes back\tscore (auditors)\tamount\t")
		// Mixes, then providers, each by name (the rows are in node ID
		// order, which reads as random).
		rows := slices.Clone(t.Rows)
		slices.SortStableFunc(rows, func(a, b Row) int {
			if c := strings.Compare(a.Role, b.Role); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		})
		for _, r := range rows {
			name := r.Name
			if name == "" && len(r.Node) >= 12 {
				name = r.Node[:12]
			}
			score := "-"
			if r.Auditors > 0 {
				score = fmt.Sprintf("%.2f (%d)", r.Score, r.Auditors)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t\n", name, orDash(r.Role), r.Forwarded, r.Delivered, r.ProbesSent, r.Probed, score, r.Amount)
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
