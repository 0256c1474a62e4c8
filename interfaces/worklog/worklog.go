// Package worklog is the work ledger that accounting plugins share: per
// node, per epoch counts of the packets a node reported forwarding,
// delivering and probing, kept in the host's KV.
//
// Layout in the Log's namespace (each key after the Log's Prefix):
// "w" epoch(8 bytes, big-endian) NodeID → three big-endian uint64s
// (forwarded, delivered, probed); "b" epoch SHA-256(BatchID) → empty, the
// marker that makes a repeated report count once. A report's marker and
// every count it changes are written in one all-or-nothing
// compare-and-swap (interfaces.KVSwapper), retried with the values that
// beat it, so concurrent reports, also from other processes sharing the
// KV, all count exactly once.
//
// Plugins may not import each other; they import this package instead.
package worklog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"math/big"
	"slices"

	"github.com/sottonet/sotto/interfaces"
)

// Log is one plugin's work ledger over a host KV.
type Log struct {
	KV        interfaces.KV
	Swapper   interfaces.KVSwapper // usually KV itself
	Namespace string
	// Prefix goes before every key, for a namespace shared with other
	// data; nil keeps the keys as documented above.
	Prefix []byte
	// Name starts every error message, e.g. "pay-blindsig".
	Name string
}

// Counts are a node's forwarded, delivered and probed packets in an epoch.
type Counts [3]uint64

// Encode is the stored form: three big-endian uint64s.
func (c Counts) Encode() []byte {
	b := make([]byte, 0, 24)
	for _, v := range c {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// decode reads a stored Counts; an absent key is zero.
func (l *Log) decode(b []byte, found bool) (Counts, error) {
	var c Counts
	if !found {
		return c, nil
	}
	if len(b) != 24 {
		return c, fmt.Errorf("%s: a count of %d bytes in the KV, want 24", l.Name, len(b))
	}
	for j := range c {
		c[j] = binary.BigEndian.Uint64(b[8*j:])
	}
	return c, nil
}

func (l *Log) key(tag byte, epoch uint64) []byte {
	k := append(append([]byte(nil), l.Prefix...), tag)
	return binary.BigEndian.AppendUint64(k, epoch)
}

// Record adds the report's records to its epoch's counts, once per
// BatchID (a report without one always counts). A record of an unknown
// kind fails the whole report with interfaces.ErrInvalidArgument.
func (l *Log) Record(ctx context.Context, req *interfaces.RecordWorkRequest) error {
	add := map[interfaces.NodeID]Counts{}
	for j, r := range req.Records {
		if r.Kind < interfaces.WorkForwarded || r.Kind > interfaces.WorkProbed {
			return fmt.Errorf("%w: record %d has unknown work kind %d", interfaces.ErrInvalidArgument, j, r.Kind)
		}
		c := add[r.Node]
		c[r.Kind-interfaces.WorkForwarded] += r.Packets
		add[r.Node] = c
	}
	nodes := slices.SortedFunc(maps.Keys(add), func(a, b interfaces.NodeID) int { return bytes.Compare(a[:], b[:]) })
	var marker []byte
	if len(req.BatchID) > 0 {
		id := sha256.Sum256(req.BatchID)
		marker = append(l.key('b', req.Epoch), id[:]...)
	}
	keys := make([][]byte, len(nodes))
	for j, n := range nodes {
		keys[j] = append(l.key('w', req.Epoch), n[:]...)
	}
	if marker == nil && len(keys) == 0 {
		return nil
	}
	cur, found := make([][]byte, len(keys)), make([]bool, len(keys))
	if len(keys) > 0 {
		got, err := l.KV.KVGet(ctx, &interfaces.KVGetRequest{Namespace: l.Namespace, Keys: keys})
		if err != nil {
			return fmt.Errorf("%s: reading counts: %w", l.Name, err)
		}
		if len(got.Found) != len(keys) || len(got.Values) != len(keys) {
			return fmt.Errorf("%s: reading counts: %w", l.Name, interfaces.ErrMalformedReply)
		}
		cur, found = got.Values, got.Found
	}
	for {
		var entries []interfaces.KVSwapEntry
		if marker != nil {
			entries = append(entries, interfaces.KVSwapEntry{Key: marker, ExpectAbsent: true})
		}
		for j, n := range nodes {
			c, err := l.decode(cur[j], found[j])
			if err != nil {
				return err
			}
			for k := range c {
				c[k] += add[n][k]
			}
			entries = append(entries, interfaces.KVSwapEntry{Key: keys[j], Expected: cur[j], ExpectAbsent: !found[j], Value: c.Encode()})
		}
		resp, err := l.Swapper.KVSwap(ctx, &interfaces.KVSwapRequest{Namespace: l.Namespace, Entries: entries, All: true})
		if err != nil {
			return fmt.Errorf("%s: recording work: %w", l.Name, err)
		}
		if len(resp.Applied) != len(entries) || len(resp.Found) != len(entries) || len(resp.Current) != len(entries) {
			return fmt.Errorf("%s: recording work: %w", l.Name, interfaces.ErrMalformedReply)
		}
		if resp.Applied[0] {
			return nil
		}
		off := 0
		if marker != nil {
			if resp.Found[0] {
				return nil // counted before
			}
			off = 1
		}
		// Another call changed a count first: add to what it left.
		for j := range nodes {
			if e := off + j; !resp.Applied[e] {
				cur[j], found[j] = resp.Current[e], resp.Found[e]
			}
		}
	}
}

// Epoch lists the epoch's counts in NodeID order, with Amount zero.
func (l *Log) Epoch(ctx context.Context, epoch uint64) ([]interfaces.NodeEarnings, error) {
	var out []interfaces.NodeEarnings
	prefix := l.key('w', epoch)
	var after []byte
	for {
		ls, err := l.KV.KVList(ctx, &interfaces.KVListRequest{Namespace: l.Namespace, Prefix: prefix, After: after})
		if err != nil {
			return nil, fmt.Errorf("%s: listing counts: %w", l.Name, err)
		}
		if len(ls.Keys) == 0 {
			return out, nil // KVList answers in key order: NodeID order
		}
		got, err := l.KV.KVGet(ctx, &interfaces.KVGetRequest{Namespace: l.Namespace, Keys: ls.Keys})
		if err != nil {
			return nil, fmt.Errorf("%s: reading counts: %w", l.Name, err)
		}
		if len(got.Found) != len(ls.Keys) || len(got.Values) != len(ls.Keys) {
			return nil, fmt.Errorf("%s: reading counts: %w", l.Name, interfaces.ErrMalformedReply)
		}
		for j, k := range ls.Keys {
			if !got.Found[j] || len(k) != len(prefix)+len(interfaces.NodeID{}) {
				continue
			}
			c, err := l.decode(got.Values[j], true)
			if err != nil {
				return nil, err
			}
			n := interfaces.NodeEarnings{Forwarded: c[0], Delivered: c[1], Probed: c[2]}
			copy(n.Node[:], k[len(prefix):])
			out = append(out, n)
		}
		after = ls.Keys[len(ls.Keys)-1]
	}
}

// Split sets each node's Amount to its share of pool by the packets it
// forwarded and delivered (probes count as no work); what integer
// division leaves over is not paid, and an Amount over 2^64-1 is capped.
// With no such work at all, Amounts stay as they are.
func Split(nodes []interfaces.NodeEarnings, pool *big.Int) {
	total := new(big.Int)
	for _, n := range nodes {
		total.Add(total, new(big.Int).SetUint64(n.Forwarded))
		total.Add(total, new(big.Int).SetUint64(n.Delivered))
	}
	if total.Sign() == 0 {
		return
	}
	for j := range nodes {
		n := &nodes[j]
		w := new(big.Int).Add(new(big.Int).SetUint64(n.Forwarded), new(big.Int).SetUint64(n.Delivered))
		a := new(big.Int).Mul(pool, w)
		a.Quo(a, total)
		if a.IsUint64() {
			n.Amount = a.Uint64()
		} else {
			n.Amount = ^uint64(0)
		}
	}
}

// Earnings answers an Earnings call from the ledger: the epoch's counts
// in NodeID order, in unit, split by Split over what pool returns. pool
// is called only when some node has counts; a nil pool leaves every
// Amount zero.
func (l *Log) Earnings(ctx context.Context, epoch uint64, unit string, pool func(context.Context) (*big.Int, error)) (*interfaces.EarningsResponse, error) {
	nodes, err := l.Epoch(ctx, epoch)
	if err != nil {
		return nil, err
	}
	resp := &interfaces.EarningsResponse{Unit: unit, Nodes: nodes}
	if len(nodes) == 0 || pool == nil {
		return resp, nil
	}
	p, err := pool(ctx)
	if err != nil {
		return nil, err
	}
	Split(resp.Nodes, p)
	return resp, nil
}
