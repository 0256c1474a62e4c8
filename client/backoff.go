package client

import (
	"math/rand/v2"
	"time"
)

// backoff paces a retry loop: the wait doubles from min at every failure
// up to max, and each wait is drawn uniformly from its upper half (jitter),
// so that clients that lost one provider together do not come back in
// step. Every retry loop of the client uses one; reset after a success.
type backoff struct {
	min, max time.Duration
	n        int
}

// next returns the wait before the next attempt and counts the failure.
func (b *backoff) next() time.Duration {
	d := b.max
	if b.n < 30 {
		if s := b.min << b.n; s > 0 && s < b.max {
			d = s
		}
	}
	b.n++
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// failures is how many failures in a row next has seen.
func (b *backoff) failures() int { return b.n }

func (b *backoff) reset() { b.n = 0 }

// Retry pacing of the client's loops.
const (
	connectBackoffMin = time.Second
	connectBackoffMax = 30 * time.Second
	// fetchBackoffMax caps the wait between fetches while the provider
	// does not answer: it is also how long a client may take to notice
	// that its provider is back.
	fetchBackoffMax = 15 * time.Second
	// maxRetransmitTimeout caps the doubled ACK timeout of a fragment.
	maxRetransmitTimeout = 5 * time.Minute
)
