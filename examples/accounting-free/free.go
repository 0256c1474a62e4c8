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
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
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
	add := map[interfaces.NodeID]counts{}
	for i, r := range req.Records {
		if r.Kind < interfaces.WorkForwarded || r.Kind > interfaces.WorkProbed {
			return nil, fmt.Errorf("%w: record %d has unknown work kind %d", interfaces.ErrInvalidArgument, i, r.Kind)
		}
		c := add[r.Node]
		c[r.Kind-interfaces.WorkForwarded] += r.Packets
		add[r.Node] = c
	}
	nodes := slices.SortedFunc(maps.Keys(add), func(a, b interfaces.NodeID) int { return bytes.Compare(a[:], b[:]) })
	var marker []byte
	if len(req.BatchID) > 0 {
		id := sha256.Sum256(req.BatchID)
		marker = append(epochKey('b', req.Epoch), id[:]...)
	}
	keys := make([][]byte, len(nodes))
	for i, n := range nodes {
		keys[i] = append(epochKey('w', req.Epoch), n[:]...)
	}
	if marker == nil && len(keys) == 0 {
		return &interfaces.RecordWorkResponse{}, nil
	}
	got, err := f.kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: Namespace, Keys: keys})
	if err != nil {
		return nil, fmt.Errorf("accounting-free: reading counts: %w", err)
	}
	cur, found := got.Values, got.Found
	for {
		var entries []interfaces.KVSwapEntry
		if marker != nil {
			entries = append(entries, interfaces.KVSwapEntry{Key: marker, ExpectAbsent: true})
		}
		for i, n := range nodes {
			c, err := decodeCounts(cur[i], found[i])
			if err != nil {
				return nil, err
			}
			for k := range c {
				c[k] += add[n][k]
			}
			entries = append(entries, interfaces.KVSwapEntry{Key: keys[i], Expected: cur[i], ExpectAbsent: !found[i], Value: c.encode()})
		}
		resp, err := f.sw.KVSwap(ctx, &interfaces.KVSwapRequest{Namespace: Namespace, Entries: entries, All: true})
		if err != nil {
			return nil, fmt.Errorf("accounting-free: recording work: %w", err)
		}
		if resp.Applied[0] {
			return &interfaces.RecordWorkResponse{}, nil
		}
		off := 0
		if marker != nil {
			if resp.Found[0] {
				return &interfaces.RecordWorkResponse{}, nil // counted before
			}
			off = 1
		}
		// Another call changed a count first: add to what it left.
		for i := range nodes {
			if e := off + i; !resp.Applied[e] {
				cur[i], found[i] = resp.Current[e], resp.Found[e]
			}
		}
	}
}

// Earnings lists the epoch's counts in NodeID order; Amount is zero.
func (f *Free) Earnings(ctx context.Context, req *interfaces.EarningsRequest) (*interfaces.EarningsResponse, error) {
	resp := &interfaces.EarningsResponse{Unit: "none"}
	prefix := epochKey('w', req.Epoch)
	var after []byte
	for {
		l, err := f.kv.KVList(ctx, &interfaces.KVListRequest{Namespace: Namespace, Prefix: prefix, After: after})
		if err != nil {
			return nil, fmt.Errorf("accounting-free: listing counts: %w", err)
		}
		if len(l.Keys) == 0 {
			return resp, nil // KVList answers in key order: NodeID order
		}
		got, err := f.kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: Namespace, Keys: l.Keys})
		if err != nil {
			return nil, fmt.Errorf("accounting-free: reading counts: %w", err)
		}
		for i, k := range l.Keys {
			if !got.Found[i] || len(k) != len(prefix)+len(interfaces.NodeID{}) {
				continue
			}
			c, err := decodeCounts(got.Values[i], true)
			if err != nil {
				return nil, err
			}
			n := interfaces.NodeEarnings{Forwarded: c[0], Delivered: c[1], Probed: c[2]}
			copy(n.Node[:], k[len(prefix):])
			resp.Nodes = append(resp.Nodes, n)
		}
		after = l.Keys[len(l.Keys)-1]
	}
}

// counts are a node's forwarded, delivered and probed packets in an epoch.
type counts [3]uint64

func (c counts) encode() []byte {
	b := make([]byte, 0, 24)
	for _, v := range c {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

func decodeCounts(b []byte, found bool) (counts, error) {
	var c counts
	if !found {
		return c, nil
	}
	if len(b) != 24 {
		return c, fmt.Errorf("accounting-free: a count of %d bytes in the KV, want 24", len(b))
	}
	for i := range c {
		c[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return c, nil
}

// epochKey is tag followed by the epoch, big-endian, so one epoch's keys
// share a prefix.
func epochKey(tag byte, epoch uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tag}, epoch)
}
