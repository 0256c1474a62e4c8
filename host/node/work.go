package node

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces"
)

// workCounter adds up, per epoch, the packets this node forwarded and
// delivered, for the accounting plugin (reported once per epoch, never per
// packet).
type workCounter struct {
	on     bool // an accounting plugin is configured
	nonce  [8]byte
	seq    atomic.Uint64
	mu     sync.Mutex
	counts map[epoch.Epoch]map[interfaces.WorkKind]uint64
}

func (w *workCounter) add(e epoch.Epoch, k interfaces.WorkKind) {
	if !w.on {
		return
	}
	w.mu.Lock()
	if w.counts == nil {
		w.counts = map[epoch.Epoch]map[interfaces.WorkKind]uint64{}
	}
	m := w.counts[e]
	if m == nil {
		m = map[interfaces.WorkKind]uint64{}
		w.counts[e] = m
	}
	m[k]++
	w.mu.Unlock()
}

// reportWork hands the accounting plugin the work of every epoch before
// upTo (and of upTo itself when final is set). Work can reach an epoch after
// it was reported (packets unwrapped in its grace period, or released late),
// and a node reports again after a restart, so every report has its own
// batch ID: node ID, epoch, this run's random nonce and a sequence number.
func (n *Node) reportWork(upTo epoch.Epoch, final bool) {
	a := n.opts.Accounting
	if a == nil {
		return
	}
	n.work.mu.Lock()
	var todo []epoch.Epoch
	for e := range n.work.counts {
		if e < upTo || (final && e == upTo) {
			todo = append(todo, e)
		}
	}
	reports := map[epoch.Epoch]map[interfaces.WorkKind]uint64{}
	for _, e := range todo {
		reports[e] = n.work.counts[e]
		delete(n.work.counts, e)
	}
	n.work.mu.Unlock()
	for e, counts := range reports {
		req := &interfaces.RecordWorkRequest{Epoch: e}
		req.BatchID = binary.BigEndian.AppendUint64(append([]byte(nil), n.id[:]...), e)
		req.BatchID = append(req.BatchID, n.work.nonce[:]...)
		req.BatchID = binary.BigEndian.AppendUint64(req.BatchID, n.work.seq.Add(1))
		for k, c := range counts {
			req.Records = append(req.Records, interfaces.WorkRecord{Node: interfaces.NodeID(n.id), Kind: k, Packets: c})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := a.RecordWork(ctx, req)
		cancel()
		if err != nil {
			n.log.Warn("could not report work to the accounting plugin", "epoch", e, "err", err)
		}
	}
}
