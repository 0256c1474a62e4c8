// Package accountingfree is the smallest real accounting plugin and the
// example docs/PLUGINS.md walks through: a network where nobody pays. It
// accepts every credential (Redeem grants what is asked) but really counts
// the work each node reports, per epoch, so Earnings can be compared with
// the paying designs on the same network (its Amount is always zero).
//
// It imports only interfaces, as every plugin can. Its counts and the
// batch IDs it has counted live in a KV (Open): its binary uses the host
// KV a node offers (interfaces.HostFrom) and refuses to start without one,
// so the counts survive a restart of the plugin or the node. Concurrent
// RecordWork calls (or two processes on one KV) never lose a count: each
// adds its batch by compare-and-swap (interfaces.KVSwapper), the batch's
// marker and the new counts in one all-or-nothing commit, retried on a
// conflict, so a batch is counted once, also across restarts.
package accountingfree

import (
	"context"
	"errors"
	"fmt"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
	"github.com/sottonet/sotto/interfaces/worklog"
)

// Config is the plugin's JSON config.
type Config struct {
	// MaxGrant caps the packets one Redeem grants; 0 means no cap.
	MaxGrant uint64 `json:"max_grant"`
}

// ParseConfig decodes raw JSON (empty means defaults) and refuses unknown keys.
func ParseConfig(raw []byte) (Config, error) {
	var c Config
	if err := interfaces.DecodeConfig(raw, &c); err != nil {
		return c, fmt.Errorf("accounting-free config: %w", err)
	}
	return c, nil
}

// Free implements interfaces.Accounting.
type Free struct {
	cfg Config
	kv  interfaces.KV
	sw  interfaces.KVSwapper
}

var _ interfaces.Accounting = (*Free)(nil)

// Namespace is the KV namespace Free keeps its state in: per epoch and
// node a count key ("w", epoch, node: three big-endian uint64s, forwarded,
// delivered, probed), and per counted batch a marker ("b", epoch,
// SHA-256 of the BatchID).
const Namespace = "accounting-free"

// Open returns the ledger kept in kv, which must offer compare-and-swap
// (interfaces.KVSwapper); opening it again on the same KV, in this process
// or another, finds every count and batch already recorded.
func Open(ctx context.Context, cfg Config, kv interfaces.KV) (*Free, error) {
	sw, ok := kv.(interfaces.KVSwapper)
	if !ok {
		return nil, fmt.Errorf("%w: accounting-free: the KV (%T) offers no compare-and-swap", interfaces.ErrUnavailable, kv)
	}
	if _, err := sw.KVSwap(ctx, &interfaces.KVSwapRequest{Namespace: Namespace}); err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			return nil, fmt.Errorf("%w: accounting-free: the KV offers no compare-and-swap: %w", interfaces.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("accounting-free: reaching the KV: %w", err)
	}
	return &Free{cfg: cfg, kv: kv, sw: sw}, nil
}

// New returns an empty ledger in memory (an interfaces/memkv), forgotten
// with the process: for tests and in-process wiring that keep nothing.
func New(cfg Config) *Free {
	f, err := Open(context.Background(), cfg, memkv.New())
	if err != nil {
		panic(err) // memkv always swaps
	}
	return f
}

// Plugin is what the plugin's main serves: its factory opens the ledger
// in the host KV and refuses to start when the host offers none.
func Plugin() interfaces.Plugin {
	return interfaces.AccountingPlugin(func(ctx context.Context, raw []byte) (interfaces.Accounting, error) {
		cfg, err := ParseConfig(raw)
		if err != nil {
			return nil, err
		}
		h, ok := interfaces.HostFrom(ctx)
		if !ok || h.KV == nil {
			return nil, fmt.Errorf("%w: accounting-free keeps its counts in the host KV, and the host offers none", interfaces.ErrUnavailable)
		}
		return Open(ctx, cfg, h.KV)
	})
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

// RecordWork adds the records to the epoch's counts, once per BatchID: the
// batch's marker and every count it changes are swapped in one
// all-or-nothing commit, retried with the values that beat it.
func (f *Free) RecordWork(ctx context.Context, req *interfaces.RecordWorkRequest) (*interfaces.RecordWorkResponse, error) {
	if err := f.work().Record(ctx, req); err != nil {
		return nil, err
	}
	return &interfaces.RecordWorkResponse{}, nil
}

// Earnings lists the epoch's counts in NodeID order; Amount is zero.
func (f *Free) Earnings(ctx context.Context, req *interfaces.EarningsRequest) (*interfaces.EarningsResponse, error) {
	return f.work().Earnings(ctx, req.Epoch, "none", nil)
}

// work is the plugin's work ledger: "w" and "b" keys in Namespace.
func (f *Free) work() *worklog.Log {
	return &worklog.Log{KV: f.kv, Swapper: f.sw, Namespace: Namespace, Name: "accounting-free"}
}
