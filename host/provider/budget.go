package provider

import (
	"net/netip"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sottonet/sotto/internal/ratelimit"
)

// replyBudget counts the bytes of replies being built or waiting to be
// written against ReplyBytes, and each client's and each address's share
// of them against ReplyBytesPerClient and ReplyBytesPerIP. A reservation
// of n bytes counts min(n, limit) against each limit, so a reply larger
// than a share still goes out when its holder holds nothing else.
type replyBudget struct {
	limit, perClient, perIP int
	gauge                   prometheus.Gauge

	mu       sync.Mutex
	used     int
	byClient map[peer.ID]int
	byIP     map[netip.Prefix]int
	peak     int // the most ever used, for tests
}

// resize changes c's reservation from `from` bytes to `to`: it always
// shrinks, and grows only if every limit has room (else it reports false
// and changes nothing).
func (b *replyBudget) resize(c *clientStream, from, to int) bool {
	if from == to {
		return true
	}
	dTotal := min(to, b.limit) - min(from, b.limit)
	dClient := min(to, b.perClient) - min(from, b.perClient)
	dIP := min(to, b.perIP) - min(from, b.perIP)
	hasIP := c.ip.IsValid()
	b.mu.Lock()
	defer b.mu.Unlock()
	if to > from {
		if b.used+dTotal > b.limit || b.byClient[c.client]+dClient > b.perClient ||
			(hasIP && b.byIP[c.ip]+dIP > b.perIP) {
			return false
		}
	}
	b.used += dTotal
	b.peak = max(b.peak, b.used)
	b.gauge.Set(float64(b.used))
	addShare(b.byClient, c.client, dClient)
	if hasIP {
		addShare(b.byIP, c.ip, dIP)
	}
	return true
}

func addShare[K comparable](m map[K]int, k K, d int) {
	if v := m[k] + d; v > 0 {
		m[k] = v
	} else {
		delete(m, k)
	}
}

// rateLimits are the Send token buckets, per client and per address.
type rateLimits struct {
	mu     sync.Mutex
	client *ratelimit.Table[peer.ID]
	ip     *ratelimit.Table[netip.Prefix]
}

// maxIdleBuckets is the size above which a table forgets its full buckets.
const maxIdleBuckets = 4096

// take spends one token of c's client and one of its address, or neither;
// it reports which scope had none ("" when both had one).
func (r *rateLimits) take(c *clientStream, now time.Time) (refused string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.client.Tokens(c.client, now) < 1:
		return "client"
	case c.ip.IsValid() && r.ip.Tokens(c.ip, now) < 1:
		return "ip"
	}
	r.client.Take(c.client, now)
	if c.ip.IsValid() {
		r.ip.Take(c.ip, now)
	}
	return ""
}

// give returns the tokens of a Send that was not accepted.
func (r *rateLimits) give(c *clientStream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.client.Give(c.client)
	if c.ip.IsValid() {
		r.ip.Give(c.ip)
	}
}
