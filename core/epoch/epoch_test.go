package epoch

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func TestNewRefusesBadConfig(t *testing.T) {
	g := time.Unix(0, 0)
	tests := []struct {
		name          string
		period, grace time.Duration
		ok            bool
	}{
		{"a positive period with a shorter grace is accepted", time.Minute, 10 * time.Second, true},
		{"zero grace is accepted", time.Second, 0, true},
		{"a zero period is refused", 0, 0, false},
		{"a negative grace is refused", time.Minute, -time.Second, false},
		{"a grace as long as the period is refused", time.Minute, time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(g, tt.period, tt.grace)
			if (err == nil) != tt.ok {
				t.Fatalf("New(%v, %v) error = %v, want ok=%v", tt.period, tt.grace, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidClock) {
				t.Fatalf("error %v does not wrap ErrInvalidClock", err)
			}
		})
	}
}

func TestEpochArithmetic(t *testing.T) {
	g := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := New(g, DefaultPeriod, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		at   time.Time
		want Epoch
	}{
		{"before genesis is epoch 0", g.Add(-time.Hour), 0},
		{"genesis is epoch 0", g, 0},
		{"one nanosecond before the first boundary is epoch 0", g.Add(DefaultPeriod - 1), 0},
		{"the first boundary starts epoch 1", g.Add(DefaultPeriod), 1},
		{"a day later is epoch 72", g.Add(24 * time.Hour), 72},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.At(tt.at); got != tt.want {
				t.Fatalf("At = %d, want %d", got, tt.want)
			}
		})
	}
	if got := c.Start(3); !got.Equal(g.Add(60 * time.Minute)) {
		t.Fatalf("Start(3) = %v", got)
	}
	if got := c.UntilNext(g.Add(5 * time.Minute)); got != 15*time.Minute {
		t.Fatalf("UntilNext = %v, want 15m", got)
	}
}

func TestKeyValidityAcrossRotation(t *testing.T) {
	g := time.Unix(1000, 0)
	c, err := New(g, 10*time.Second, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		offset  time.Duration
		want    []Epoch
		expired Epoch // an epoch that must be expired at this instant; 0 means skip
	}{
		{"inside epoch 0 only its key is valid", 5 * time.Second, []Epoch{0}, 0},
		{"just after the boundary the previous key is in grace", 10 * time.Second, []Epoch{0, 1}, 0},
		{"at the end of grace the previous key is gone", 12 * time.Second, []Epoch{1}, 0},
		{"deep in epoch 3 epochs 1 and 2 are expired", 35 * time.Second, []Epoch{3}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := g.Add(tt.offset)
			if got := c.ValidKeys(at); !slices.Equal(got, tt.want) {
				t.Fatalf("ValidKeys = %v, want %v", got, tt.want)
			}
			for _, e := range tt.want {
				if !c.KeyValid(e, at) || c.Expired(e, at) {
					t.Fatalf("key %d should be valid and not expired", e)
				}
			}
			if tt.expired != 0 && (!c.Expired(tt.expired, at) || c.KeyValid(tt.expired, at)) {
				t.Fatalf("key %d should be expired", tt.expired)
			}
		})
	}
	if c.KeyValid(5, g.Add(10*time.Second)) {
		t.Fatal("a future epoch's key must not be valid yet")
	}
}

func TestTicksFollowBoundaries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		c, err := New(start.Add(-500*time.Millisecond), time.Second, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		ticks := c.Ticks(ctx)
		for want := Epoch(1); want <= 4; want++ {
			got := <-ticks
			if got != want {
				t.Fatalf("tick %d, want %d", got, want)
			}
			if now := time.Now(); !now.Equal(c.Start(want)) {
				t.Fatalf("tick for epoch %d at %v, want %v", want, now.Sub(start), c.Start(want).Sub(start))
			}
		}
		cancel()
		if _, ok := <-ticks; ok {
			// One tick may already be buffered; the next read must see the close.
			if _, ok := <-ticks; ok {
				t.Fatal("Ticks channel not closed after cancel")
			}
		}
	})
}

func TestWaitNextHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := New(time.Now(), time.Hour, 0)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		_, err := c.WaitNext(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitNext error = %v, want deadline exceeded", err)
		}
	})
}
