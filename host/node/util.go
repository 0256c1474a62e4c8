package node

import (
	"slices"
	"time"

	"github.com/sottonet/sotto/core/epoch"
)

// logLimited logs at most one line per key and second, so a flood of bad
// input is visible without flooding the log.
func (n *Node) logLimited(key, msg string, args ...any) {
	now := time.Now().UnixNano()
	v, ok := n.logSeen.Load(key)
	if !ok {
		v, _ = n.logSeen.LoadOrStore(key, new(int64))
	}
	last := v.(*int64)
	n.logMu.Lock()
	if now-*last < int64(time.Second) {
		n.logMu.Unlock()
		return
	}
	*last = now
	n.logMu.Unlock()
	n.log.Warn(msg, args...)
}

// sortedEpochs returns the keys of m in ascending order.
func sortedEpochs[V any](m map[epoch.Epoch]V) []epoch.Epoch {
	es := make([]epoch.Epoch, 0, len(m))
	for e := range m {
		es = append(es, e)
	}
	slices.Sort(es)
	return es
}
