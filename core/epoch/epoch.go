// Package epoch is Sotto's epoch clock. Time is cut into numbered epochs of a
// fixed period (20 minutes by default, seconds in tests) counted from a
// network genesis instant. Each epoch has its own Sphinx key on every mix and
// its own PKI document; a mix keeps accepting the previous epoch's key for a
// grace period after the boundary so that packets already in flight across a
// rotation are not lost, and drops that key (and its replay set) afterwards.
//
// The package has no I/O: the PKI uses it to decide which descriptors are
// current, mixes use it to pick the key that unwraps a packet, clients use it
// to pick the document they route with.
package epoch

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultPeriod is the length of an epoch on a production network.
const DefaultPeriod = 20 * time.Minute

// ErrInvalidClock is returned by New for an unusable configuration.
var ErrInvalidClock = errors.New("epoch: invalid clock")

// Epoch is an epoch number: epoch n covers [genesis + n·period, genesis + (n+1)·period).
type Epoch = uint64

// Clock maps wall-clock time to epochs. The zero value is not usable; build
// one with New. A Clock is an immutable value and safe for concurrent use.
type Clock struct {
	genesis time.Time
	period  time.Duration
	grace   time.Duration
}

// New returns a clock whose epoch 0 starts at genesis. The grace period is
// how long after an epoch ends its Sphinx key is still accepted; it must be
// shorter than the period, so that at most two keys are live at once.
func New(genesis time.Time, period, grace time.Duration) (Clock, error) {
	switch {
	case period <= 0:
		return Clock{}, fmt.Errorf("%w: period %v must be positive", ErrInvalidClock, period)
	case grace < 0 || grace >= period:
		return Clock{}, fmt.Errorf("%w: grace %v must be in [0, period %v)", ErrInvalidClock, grace, period)
	}
	return Clock{genesis: genesis, period: period, grace: grace}, nil
}

// Period returns the length of one epoch.
func (c Clock) Period() time.Duration { return c.period }

// Grace returns how long a key stays valid after its epoch ends.
func (c Clock) Grace() time.Duration { return c.grace }

// Genesis returns the start of epoch 0.
func (c Clock) Genesis() time.Time { return c.genesis }

// At returns the epoch that contains t. Instants before genesis belong to
// epoch 0: a network does not exist before its genesis, and clamping keeps
// the arithmetic unsigned.
func (c Clock) At(t time.Time) Epoch {
	d := t.Sub(c.genesis)
	if d < 0 {
		return 0
	}
	return Epoch(d / c.period)
}

// Now returns the current epoch.
func (c Clock) Now() Epoch { return c.At(time.Now()) }

// Start returns the instant epoch e begins.
func (c Clock) Start(e Epoch) time.Time {
	return c.genesis.Add(time.Duration(e) * c.period)
}

// End returns the instant epoch e ends (the start of e+1).
func (c Clock) End(e Epoch) time.Time { return c.Start(e + 1) }

// UntilNext returns how long from t until the next epoch boundary.
func (c Clock) UntilNext(t time.Time) time.Duration {
	return c.End(c.At(t)).Sub(t)
}

// KeyValid reports whether the Sphinx key of epoch e may unwrap a packet
// arriving at t: from the start of e until its end plus the grace period.
func (c Clock) KeyValid(e Epoch, t time.Time) bool {
	return !t.Before(c.Start(e)) && t.Before(c.End(e).Add(c.grace))
}

// ValidKeys returns the epochs whose Sphinx keys a mix must hold at t: the
// current epoch, preceded by the previous one while its grace period lasts.
// A packet whose key epoch is not listed must be dropped.
func (c Clock) ValidKeys(t time.Time) []Epoch {
	cur := c.At(t)
	if cur > 0 && c.KeyValid(cur-1, t) {
		return []Epoch{cur - 1, cur}
	}
	return []Epoch{cur}
}

// Expired reports whether, at t, the key of epoch e and everything kept
// with it (its replay set) can be erased for good.
func (c Clock) Expired(e Epoch, t time.Time) bool {
	return !t.Before(c.End(e).Add(c.grace))
}

// WaitNext blocks until the next epoch boundary after now and returns the
// epoch that begins there, or ctx's error if ctx ends first.
func (c Clock) WaitNext(ctx context.Context) (Epoch, error) {
	now := time.Now()
	next := c.At(now) + 1
	timer := time.NewTimer(c.Start(next).Sub(now))
	defer timer.Stop()
	select {
	case <-timer.C:
		return next, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("epoch: waiting for epoch %d: %w", next, ctx.Err())
	}
}

// Ticks sends each new epoch number on the returned channel as its boundary
// passes, until ctx ends; then the channel is closed. A slow receiver misses
// no boundary silently: it receives the newest epoch, which may skip numbers.
func (c Clock) Ticks(ctx context.Context) <-chan Epoch {
	ch := make(chan Epoch, 1)
	go func() {
		defer close(ch)
		for {
			e, err := c.WaitNext(ctx)
			if err != nil {
				return
			}
			select {
			case ch <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}
