// Package accountingfree is the smallest real accounting plugin and the
// example docs/PLUGINS.md walks through: a network where nobody pays. It
// accepts every credential (Redeem grants what is asked) but really counts
// the work each node reports, per epoch, so Earnings can be compared with
// the paying designs on the same network (its Amount is always zero).
//
// It imports only interfaces, as every plugin can. Its counts live in
// memory: a restart of the plugin forgets them (a paying design must keep
// them durable, e.g. in Storage's KV).
package accountingfree

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/sottonet/sotto/interfaces"
)

// Config is the plugin's JSON config.
type Config struct {
	// MaxGrant caps the packets one Redeem grants; 0 means no cap.
	MaxGrant uint64 `json:"max_grant"`
}

// ParseConfig decodes raw JSON (empty means defaults) and refuses unknown keys.
func ParseConfig(raw []byte) (Config, error) {
	var c Config
	if len(bytes.TrimSpace(raw)) == 0 {
		return c, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%w: accounting-free config: %v", interfaces.ErrInvalidArgument, err)
	}
	return c, nil
}

// Free implements interfaces.Accounting.
type Free struct {
	cfg     Config
	mu      sync.Mutex
	work    map[uint64]map[interfaces.NodeID]*interfaces.NodeEarnings
	batches map[string]bool // epoch||BatchID already counted
}

var _ interfaces.Accounting = (*Free)(nil)

// New returns an empty ledger.
func New(cfg Config) *Free {
	return &Free{cfg: cfg, work: map[uint64]map[interfaces.NodeID]*interfaces.NodeEarnings{}, batches: map[string]bool{}}
}

// Info publishes no parameters: there is nothing to pay.
func (f *Free) Info(context.Context, *interfaces.AccountingInfoRequest) (*interfaces.AccountingInfoResponse, error) {
	return &interfaces.AccountingInfoResponse{Scheme: "free"}, nil
}

// Issue answers any issuance request with an empty credential.
func (f *Free) Issue(_ context.Context, req *interfaces.IssueRequest) (*interfaces.IssueResponse, error) {
	if len(req.Request) > interfaces.MaxCredentialLen {
		return nil, fmt.Errorf("%w: issue request of %d bytes", interfaces.ErrInvalidArgument, len(req.Request))
	}
	return &interfaces.IssueResponse{Response: []byte{}}, nil
}

// Redeem grants what is asked (up to MaxGrant), whatever the credential.
func (f *Free) Redeem(_ context.Context, req *interfaces.RedeemRequest) (*interfaces.RedeemResponse, error) {
	if len(req.Credential) > interfaces.MaxCredentialLen {
		return nil, fmt.Errorf("%w: credential of %d bytes", interfaces.ErrInvalidArgument, len(req.Credential))
	}
	granted := req.Packets
	if f.cfg.MaxGrant > 0 {
		granted = min(granted, f.cfg.MaxGrant)
	}
	return &interfaces.RedeemResponse{Granted: granted}, nil
}

// RecordWork adds the records to the epoch's counts, once per BatchID.
func (f *Free) RecordWork(_ context.Context, req *interfaces.RecordWorkRequest) (*interfaces.RecordWorkResponse, error) {
	for i, r := range req.Records {
		if r.Kind < interfaces.WorkForwarded || r.Kind > interfaces.WorkProbed {
			return nil, fmt.Errorf("%w: record %d has unknown work kind %d", interfaces.ErrInvalidArgument, i, r.Kind)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(req.BatchID) > 0 {
		key := fmt.Sprintf("%d/%x", req.Epoch, req.BatchID)
		if f.batches[key] {
			return &interfaces.RecordWorkResponse{}, nil
		}
		f.batches[key] = true
	}
	nodes := f.work[req.Epoch]
	if nodes == nil {
		nodes = map[interfaces.NodeID]*interfaces.NodeEarnings{}
		f.work[req.Epoch] = nodes
	}
	for _, r := range req.Records {
		n := nodes[r.Node]
		if n == nil {
			n = &interfaces.NodeEarnings{Node: r.Node}
			nodes[r.Node] = n
		}
		switch r.Kind {
		case interfaces.WorkForwarded:
			n.Forwarded += r.Packets
		case interfaces.WorkDelivered:
			n.Delivered += r.Packets
		case interfaces.WorkProbed:
			n.Probed += r.Packets
		}
	}
	return &interfaces.RecordWorkResponse{}, nil
}

// Earnings lists the epoch's counts in NodeID order; Amount is zero.
func (f *Free) Earnings(_ context.Context, req *interfaces.EarningsRequest) (*interfaces.EarningsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &interfaces.EarningsResponse{Unit: "none"}
	for _, n := range f.work[req.Epoch] {
		resp.Nodes = append(resp.Nodes, *n)
	}
	slices.SortFunc(resp.Nodes, func(a, b interfaces.NodeEarnings) int { return bytes.Compare(a.Node[:], b.Node[:]) })
	return resp, nil
}
