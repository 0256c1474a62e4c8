package provider

import (
	"net/netip"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
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
	client rateTable[peer.ID]
	ip     rateTable[netip.Prefix]
}

// rateTable is one token bucket per key: rate tokens a second, at most
// burst. Buckets that are full are forgotten when the table grows
// (maxIdleBuckets), so it holds the keys that sent recently.
type rateTable[K comparable] struct {
	rate, burst float64
	buckets     map[K]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxIdleBuckets is the size above which a table forgets its full buckets.
const maxIdleBuckets = 4096

// take spends one token of c's client and one of its address, or neither;
// it reports which scope had none ("" when both had one).
func (r *rateLimits) take(c *clientStream, now time.Time) (refused string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cb := r.client.get(c.client, now)
	var ib *bucket
	if c.ip.IsValid() {
		ib = r.ip.get(c.ip, now)
	}
	switch {
	case cb.tokens < 1:
		return "client"
	case ib != nil && ib.tokens < 1:
		return "ip"
	}
	cb.tokens--
	if ib != nil {
		ib.tokens--
	}
	return ""
}

// give returns the tokens of a Send that was not accepted.
func (r *rateLimits) give(c *clientStream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.client.buckets[c.client]; b != nil {
		b.tokens = min(b.tokens+1, r.client.burst)
	}
	if b := r.ip.buckets[c.ip]; b != nil && c.ip.IsValid() {
		b.tokens = min(b.tokens+1, r.ip.burst)
	}
}

// get returns k's bucket, refilled up to now.
func (t *rateTable[K]) get(k K, now time.Time) *bucket {
	b := t.buckets[k]
	if b == nil {
		if len(t.buckets) >= maxIdleBuckets {
			t.forgetFull(now)
		}
		b = &bucket{tokens: t.burst, last: now}
		t.buckets[k] = b
		return b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(t.burst, b.tokens+dt*t.rate)
		b.last = now
	}
	return b
}

// forgetFull drops the buckets that have refilled: a key that comes back
// gets a full one, which is what it would have.
func (t *rateTable[K]) forgetFull(now time.Time) {
	for k, b := range t.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*t.rate >= t.burst {
			delete(t.buckets, k)
		}
	}
}
