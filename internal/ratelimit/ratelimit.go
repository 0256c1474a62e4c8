// Package ratelimit is a table of token buckets, one per key (a client, a
// source address): Rate tokens a second, at most Burst. The provider's
// Send limits and the gossip PKI's per-source admission checks use it. A
// table forgets the buckets that have refilled once it holds MaxKeys, so
// it holds the keys that were active recently; a key that comes back gets
// a full bucket, which is what it would have had. A Table is not safe for
// concurrent use: its owner locks.
package ratelimit

import "time"

// Table is one token bucket per key.
type Table[K comparable] struct {
	rate, burst float64
	maxKeys     int
	buckets     map[K]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns an empty table: rate tokens a second, at most burst per
// key, full buckets forgotten beyond maxKeys keys.
func New[K comparable](rate, burst float64, maxKeys int) *Table[K] {
	return &Table[K]{rate: rate, burst: burst, maxKeys: maxKeys, buckets: map[K]*bucket{}}
}

// Burst is the table's bucket size.
func (t *Table[K]) Burst() float64 { return t.burst }

// Len is the number of buckets held.
func (t *Table[K]) Len() int { return len(t.buckets) }

// Tokens returns k's tokens, refilled up to now (a new key's bucket is
// full).
func (t *Table[K]) Tokens(k K, now time.Time) float64 { return t.get(k, now).tokens }

// Take spends one of k's tokens if it has one.
func (t *Table[K]) Take(k K, now time.Time) bool {
	b := t.get(k, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Give returns a token to k, up to the burst (a spent token whose work was
// not done).
func (t *Table[K]) Give(k K) {
	if b := t.buckets[k]; b != nil {
		b.tokens = min(b.tokens+1, t.burst)
	}
}

// get returns k's bucket, refilled up to now.
func (t *Table[K]) get(k K, now time.Time) *bucket {
	b := t.buckets[k]
	if b == nil {
		if len(t.buckets) >= t.maxKeys {
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

// forgetFull drops the buckets that have refilled.
func (t *Table[K]) forgetFull(now time.Time) {
	for k, b := range t.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*t.rate >= t.burst {
			delete(t.buckets, k)
		}
	}
}
