// Package shopper is the secret-shopper accounting design: users pay
// nothing; auditors measure nodes.
//
// An auditor (see Auditor) sends probe packets that a mix cannot tell from
// a client's loop cover: the same Sphinx size, the same Poisson timing as
// a client's loop stream, through paths it chooses so that every mix is
// crossed by several paths with different neighbours, back to the
// auditor's own mailbox. At the end of an epoch it infers each mix's
// delivery ratio from the path outcomes and reports, per node, probes
// routed through it (interfaces.WorkProbeSent) and probes inferred to have
// crossed it (interfaces.WorkProbed), with a BatchID whose first 32 bytes
// are the auditor's node ID (the host's own convention for work reports).
//
// The ledger (Ledger, the node half of the contract) keeps those reports
// durably in the host KV, one value per epoch written by compare-and-swap
// together with a marker for the batch, so a repeated report counts once
// and a restart of the plugin loses nothing. Earnings splits the epoch's
// budget among nodes by measured delivery: a node's score is the median,
// over auditors, of returned/sent; a node scoring below the threshold
// earns nothing; the others share the budget in proportion to their
// scores. Work a node reports about itself (forwarded, delivered) is shown
// but never paid: self-reported work can lie.
//
// Redeem grants every request: users pay nothing in this design.
package shopper

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
)

// Scheme is the design's name in Info.
const Scheme = "shopper"

// Namespace is the KV namespace of the ledger. Keys: "e" epoch → the
// epoch's reports (JSON); "b" epoch SHA-256(batch) → marker.
const Namespace = "pay-shopper"

// Config is the ledger's configuration (JSON from the node's accounting
// slot; defaults for zero values).
type Config struct {
	// Budget is what the network pays per epoch, in micro-units.
	Budget uint64 `json:"budget"`
	// Threshold is the delivery score below which a node earns nothing.
	Threshold float64 `json:"threshold"`
	// MinProbes is how many probes must have crossed a node (per auditor)
	// for the auditor's score of it to count.
	MinProbes uint64 `json:"min_probes"`
}

// DefaultConfig is what zero fields become.
var DefaultConfig = Config{Budget: 1_000_000, Threshold: 0.9, MinProbes: 10}

// ParseConfig decodes, defaults and validates raw (empty means defaults).
func ParseConfig(raw []byte) (Config, error) {
	var c Config
	if err := interfaces.DecodeConfig(raw, &c); err != nil {
		return c, fmt.Errorf("pay-shopper config: %w", err)
	}
	if c.Budget == 0 {
		c.Budget = DefaultConfig.Budget
	}
	if c.Threshold == 0 {
		c.Threshold = DefaultConfig.Threshold
	}
	if c.MinProbes == 0 {
		c.MinProbes = DefaultConfig.MinProbes
	}
	if !(c.Threshold > 0 && c.Threshold <= 1) {
		return c, fmt.Errorf("%w: pay-shopper: threshold %v is not in (0, 1]", interfaces.ErrInvalidArgument, c.Threshold)
	}
	return c, nil
}

// counts is what one reporter said about one node in one epoch.
type counts struct {
	Forwarded uint64 `json:"f,omitempty"`
	Delivered uint64 `json:"d,omitempty"`
	Probed    uint64 `json:"p,omitempty"` // probes inferred to have crossed it
	Sent      uint64 `json:"s,omitempty"` // probes routed through it
}

// epochState is the durable value of one epoch: reporter (hex) → node
// (hex) → counts.
type epochState map[string]map[string]*counts

// Ledger is the node half: it records auditors' reports and turns them
// into earnings.
type Ledger struct {
	cfg Config
	kv  interfaces.KV
	sw  interfaces.KVSwapper
	mu  sync.Mutex // serialises this process's read-modify-write; CAS guards the rest
}

// Open opens the ledger on kv, which must offer compare-and-swap. Opening
// it again on the same KV (a restart) finds every report.
func Open(ctx context.Context, cfg Config, kv interfaces.KV) (*Ledger, error) {
	sw, ok := kv.(interfaces.KVSwapper)
	if !ok {
		return nil, fmt.Errorf("%w: pay-shopper: the KV (%T) offers no compare-and-swap", interfaces.ErrUnavailable, kv)
	}
	if _, err := sw.KVSwap(ctx, &interfaces.KVSwapRequest{Namespace: Namespace}); err != nil {
		return nil, fmt.Errorf("%w: pay-shopper: the KV offers no compare-and-swap: %w", interfaces.ErrUnavailable, err)
	}
	return &Ledger{cfg: cfg, kv: kv, sw: sw}, nil
}

// New is a ledger on a fresh in-memory KV (tests, the demo's free runs).
func New(cfg Config) *Ledger {
	l, err := Open(context.Background(), cfg, memkv.New())
	if err != nil {
		panic(err) // memkv always swaps
	}
	return l
}

// Plugin is the accounting plugin, for interfaces.Serve or a builtin. It
// keeps its reports in the host KV and refuses to start without one.
func Plugin() interfaces.Plugin {
	return interfaces.AccountingPlugin(func(ctx context.Context, raw []byte) (interfaces.Accounting, error) {
		cfg, err := ParseConfig(raw)
		if err != nil {
			return nil, err
		}
		h, ok := interfaces.HostFrom(ctx)
		if !ok || h.KV == nil {
			return nil, fmt.Errorf("%w: pay-shopper keeps its scores in the host KV, and the host offers none", interfaces.ErrUnavailable)
		}
		return Open(ctx, cfg, h.KV)
	})
}

func epochKey(tag byte, e uint64) []byte { return binary.BigEndian.AppendUint64([]byte{tag}, e) }

// Info publishes the scheme and the budget and threshold.
func (l *Ledger) Info(ctx context.Context, _ *interfaces.AccountingInfoRequest) (*interfaces.AccountingInfoResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, _ := json.Marshal(l.cfg)
	return &interfaces.AccountingInfoResponse{Scheme: Scheme, Params: p}, nil
}

// Issue has nothing to issue: users pay nothing.
func (l *Ledger) Issue(ctx context.Context, req *interfaces.IssueRequest) (*interfaces.IssueResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(req.Request) > interfaces.MaxCredentialLen {
		return nil, fmt.Errorf("%w: pay-shopper: request of %d bytes", interfaces.ErrInvalidArgument, len(req.Request))
	}
	return &interfaces.IssueResponse{}, nil
}

// Redeem grants what was asked: users pay nothing.
func (l *Ledger) Redeem(ctx context.Context, req *interfaces.RedeemRequest) (*interfaces.RedeemResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(req.Credential) > interfaces.MaxCredentialLen {
		return nil, fmt.Errorf("%w: pay-shopper: credential of %d bytes", interfaces.ErrInvalidArgument, len(req.Credential))
	}
	return &interfaces.RedeemResponse{Granted: req.Packets}, nil
}

// reporter is who made a report: the first 32 bytes of its BatchID (the
// host and Auditor both put their node ID there), or "" without one.
func reporter(batch []byte) string {
	if len(batch) < 32 {
		return ""
	}
	return fmt.Sprintf("%x", batch[:32])
}

// RecordWork adds a report. A report's batch marker and the epoch's new
// value are written in one all-or-nothing swap, so a repeated BatchID
// counts once, also across restarts and concurrent calls.
func (l *Ledger) RecordWork(ctx context.Context, req *interfaces.RecordWorkRequest) (*interfaces.RecordWorkResponse, error) {
	for j, r := range req.Records {
		if r.Kind < interfaces.WorkForwarded || r.Kind > interfaces.WorkProbeSent {
			return nil, fmt.Errorf("%w: pay-shopper: record %d has unknown work kind %d", interfaces.ErrInvalidArgument, j, r.Kind)
		}
	}
	if len(req.Records) == 0 {
		return &interfaces.RecordWorkResponse{}, ctx.Err()
	}
	who := reporter(req.BatchID)
	key := epochKey('e', req.Epoch)
	var marker []byte
	if len(req.BatchID) > 0 {
		id := sha256.Sum256(req.BatchID)
		marker = append(epochKey('b', req.Epoch), id[:]...)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cur, found, st, err := l.load(ctx, req.Epoch)
		if err != nil {
			return nil, err
		}
		m := st[who]
		if m == nil {
			m = map[string]*counts{}
			st[who] = m
		}
		for _, r := range req.Records {
			n := fmt.Sprintf("%x", r.Node[:])
			c := m[n]
			if c == nil {
				c = &counts{}
				m[n] = c
			}
			switch r.Kind {
			case interfaces.WorkForwarded:
				c.Forwarded += r.Packets
			case interfaces.WorkDelivered:
				c.Delivered += r.Packets
			case interfaces.WorkProbed:
				c.Probed += r.Packets
			case interfaces.WorkProbeSent:
				c.Sent += r.Packets
			}
		}
		val, err := json.Marshal(st)
		if err != nil {
			return nil, err
		}
		var entries []interfaces.KVSwapEntry
		if marker != nil {
			entries = append(entries, interfaces.KVSwapEntry{Key: marker, ExpectAbsent: true, Value: []byte{1}})
		}
		entries = append(entries, interfaces.KVSwapEntry{Key: key, Expected: cur, ExpectAbsent: !found, Value: val})
		resp, err := l.sw.KVSwap(ctx, &interfaces.KVSwapRequest{Namespace: Namespace, Entries: entries, All: true})
		if err != nil {
			return nil, fmt.Errorf("pay-shopper: recording work: %w", err)
		}
		if len(resp.Applied) != len(entries) {
			return nil, fmt.Errorf("pay-shopper: recording work: %w", interfaces.ErrMalformedReply)
		}
		if resp.Applied[0] && resp.Applied[len(entries)-1] {
			return &interfaces.RecordWorkResponse{}, nil
		}
		if marker != nil && len(resp.Found) > 0 && resp.Found[0] {
			return &interfaces.RecordWorkResponse{}, nil // this batch was counted before
		}
		// Another writer changed the epoch meanwhile: read again.
	}
}

// load reads an epoch's state.
func (l *Ledger) load(ctx context.Context, e uint64) (raw []byte, found bool, st epochState, err error) {
	got, err := l.kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: Namespace, Keys: [][]byte{epochKey('e', e)}})
	if err != nil {
		return nil, false, nil, fmt.Errorf("pay-shopper: reading epoch %d: %w", e, err)
	}
	if len(got.Found) != 1 || len(got.Values) != 1 {
		return nil, false, nil, fmt.Errorf("pay-shopper: reading epoch %d: %w", e, interfaces.ErrMalformedReply)
	}
	st = epochState{}
	if got.Found[0] {
		if err := json.Unmarshal(got.Values[0], &st); err != nil {
			return nil, false, nil, fmt.Errorf("pay-shopper: epoch %d's stored state is corrupt: %w", e, err)
		}
	}
	return got.Values[0], got.Found[0], st, nil
}

// Scores returns each probed node's delivery score in epoch e: the median,
// over auditors that routed at least MinProbes probes through it, of
// probed/sent. Nodes no auditor measured enough are absent.
func (l *Ledger) Scores(ctx context.Context, e uint64) (map[interfaces.NodeID]float64, error) {
	_, _, st, err := l.load(ctx, e)
	if err != nil {
		return nil, err
	}
	return scores(st, l.cfg.MinProbes), nil
}

func scores(st epochState, minProbes uint64) map[interfaces.NodeID]float64 {
	per := map[interfaces.NodeID][]float64{}
	for _, m := range st {
		for hx, c := range m {
			if c.Sent < minProbes || c.Sent == 0 {
				continue
			}
			id, err := parseNode(hx)
			if err != nil {
				continue
			}
			per[id] = append(per[id], min(1, float64(c.Probed)/float64(c.Sent)))
		}
	}
	out := make(map[interfaces.NodeID]float64, len(per))
	for id, v := range per {
		out[id] = Median(v)
	}
	return out
}

// Median is the median of v (the mean of the middle two for an even
// count); 0 for none.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func parseNode(hx string) (interfaces.NodeID, error) {
	var id interfaces.NodeID
	if len(hx) != 64 {
		return id, errors.New("bad node id")
	}
	_, err := hex.Decode(id[:], []byte(hx))
	return id, err
}

// Earnings splits the epoch's budget by measured delivery.
func (l *Ledger) Earnings(ctx context.Context, req *interfaces.EarningsRequest) (*interfaces.EarningsResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	_, _, st, err := l.load(ctx, req.Epoch)
	if err != nil {
		return nil, err
	}
	sum := map[interfaces.NodeID]*interfaces.NodeEarnings{}
	for _, m := range st {
		for hx, c := range m {
			id, err := parseNode(hx)
			if err != nil {
				return nil, fmt.Errorf("pay-shopper: epoch %d's stored state is corrupt: %w", req.Epoch, err)
			}
			n := sum[id]
			if n == nil {
				n = &interfaces.NodeEarnings{Node: id}
				sum[id] = n
			}
			n.Forwarded += c.Forwarded
			n.Delivered += c.Delivered
			n.Probed += c.Probed
			n.ProbesSent += c.Sent
		}
	}
	sc := scores(st, l.cfg.MinProbes)
	for id, a := range Split(l.cfg.Budget, l.cfg.Threshold, sc) {
		sum[id].Amount = a
	}
	ids := slices.SortedFunc(maps.Keys(sum), func(a, b interfaces.NodeID) int { return bytes.Compare(a[:], b[:]) })
	resp := &interfaces.EarningsResponse{Unit: "micro-reward", Nodes: make([]interfaces.NodeEarnings, 0, len(ids))}
	for _, id := range ids {
		resp.Nodes = append(resp.Nodes, *sum[id])
	}
	return resp, nil
}

// Split divides budget among the nodes scoring at least threshold, in
// proportion to their scores; the others get nothing. Rounding leftovers
// stay unpaid.
func Split(budget uint64, threshold float64, sc map[interfaces.NodeID]float64) map[interfaces.NodeID]uint64 {
	var total float64
	for _, s := range sc {
		if s >= threshold {
			total += s
		}
	}
	out := map[interfaces.NodeID]uint64{}
	for id, s := range sc {
		if s >= threshold && total > 0 {
			out[id] = uint64(float64(budget) * s / total)
		} else {
			out[id] = 0
		}
	}
	return out
}
