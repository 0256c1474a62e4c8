package mix

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type released struct {
	id int
	at time.Time
}

func TestSchedulerReleasesEachItemAtItsTimeInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu  sync.Mutex
			got []released
		)
		s, err := NewScheduler(64, func(id int) {
			mu.Lock()
			got = append(got, released{id, time.Now()})
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan []int)
		go func() { done <- s.Run(ctx) }()

		start := time.Now()
		r := rand.New(rand.NewPCG(1, 2))
		want := make([]released, 50)
		for i := range want {
			d := time.Duration(r.IntN(5000)) * time.Millisecond
			want[i] = released{i, start.Add(d)}
			if err := s.Push(start.Add(d), i); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(6 * time.Second)
		synctest.Wait()
		cancel()
		if left := <-done; len(left) != 0 {
			t.Fatalf("%d items left after all release times passed", len(left))
		}
		sort.SliceStable(want, func(i, j int) bool { return want[i].at.Before(want[j].at) })
		if len(got) != len(want) {
			t.Fatalf("released %d items, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i].id != want[i].id || !got[i].at.Equal(want[i].at) {
				t.Fatalf("release %d: got item %d at %v, want item %d at %v",
					i, got[i].id, got[i].at.Sub(start), want[i].id, want[i].at.Sub(start))
			}
		}
	})
}

func TestSchedulerKeepsPushOrderForEqualTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []int
		s, _ := NewScheduler(16, func(id int) { got = append(got, id) })
		at := time.Now().Add(time.Second)
		for i := range 10 {
			if err := s.Push(at, i); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(t.Context())
		go s.Run(ctx)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		cancel()
		if !slices.Equal(got, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Fatalf("release order %v, want push order", got)
		}
	})
}

func TestSchedulerWakesForAnEarlierItem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []released
		s, _ := NewScheduler(4, func(id int) { got = append(got, released{id, time.Now()}) })
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go s.Run(ctx)
		start := time.Now()
		s.Push(start.Add(time.Hour), 1)
		synctest.Wait() // Run is now asleep until the hour
		s.Push(start.Add(time.Second), 2)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if len(got) != 1 || got[0].id != 2 || !got[0].at.Equal(start.Add(time.Second)) {
			t.Fatalf("got %+v, want item 2 released after 1s", got)
		}
	})
}

func TestSchedulerRefusesPastCapacityAndAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := NewScheduler(3, func(int) {})
		later := time.Now().Add(time.Minute)
		for i := range 3 {
			if err := s.Push(later, i); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Push(later, 3); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("push past capacity: got %v, want ErrQueueFull", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan []int)
		go func() { done <- s.Run(ctx) }()
		synctest.Wait()
		cancel()
		left := <-done
		if !slices.Equal(left, []int{0, 1, 2}) {
			t.Fatalf("left after stop: %v, want [0 1 2]", left)
		}
		if err := s.Push(later, 4); !errors.Is(err, ErrStopped) {
			t.Fatalf("push after stop: got %v, want ErrStopped", err)
		}
	})
}

func TestNewSchedulerRejectsBadArguments(t *testing.T) {
	if _, err := NewScheduler(0, func(int) {}); err == nil {
		t.Error("capacity 0 accepted")
	}
	if _, err := NewScheduler[int](1, nil); err == nil {
		t.Error("nil release accepted")
	}
}

func TestSchedulerConcurrentPushesAllReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		seen := map[int]int{}
		s, _ := NewScheduler(1000, func(id int) { mu.Lock(); seen[id]++; mu.Unlock() })
		ctx, cancel := context.WithCancel(t.Context())
		go s.Run(ctx)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 7))
				for i := range 100 {
					d := time.Duration(r.IntN(100)) * time.Millisecond
					if err := s.Push(time.Now().Add(d), g*100+i); err != nil {
						t.Error(err)
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
		wg.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		cancel()
		if len(seen) != 800 {
			t.Fatalf("released %d distinct items, want 800", len(seen))
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("item %d released %d times", id, n)
			}
		}
	})
}

func TestSchedulerPushAndReleaseDoNotAllocate(t *testing.T) {
	s, _ := NewScheduler(128, func(int) {})
	past := time.Now().Add(-time.Second)
	allocs := testing.AllocsPerRun(100, func() {
		for i := range 100 {
			s.Push(past, i)
		}
		s.mu.Lock()
		for len(s.heap) > 0 {
			s.pop()
		}
		s.mu.Unlock()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per 100 push+pop, want 0", allocs)
	}
}

func TestExpDelayFitsTheExponentialDistribution(t *testing.T) {
	const mu = 4.0 // mean 250 ms
	r := rand.New(rand.NewPCG(42, 43))
	n := 20000
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = ExpDelay(r, mu, 0).Seconds()
	}
	// Kolmogorov–Smirnov statistic against CDF 1 − e^(−μx).
	slices.Sort(xs)
	var d float64
	for i, x := range xs {
		f := 1 - math.Exp(-mu*x)
		d = max(d, math.Abs(float64(i+1)/float64(n)-f), math.Abs(f-float64(i)/float64(n)))
	}
	// Critical value at α = 0.001: 1.95/√n.
	if crit := 1.95 / math.Sqrt(float64(n)); d > crit {
		t.Fatalf("KS statistic %.4f > %.4f: delays do not fit Exp(%v)", d, crit, mu)
	}
}

func TestExpDelayEdgeCases(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	tests := []struct {
		name string
		mu   float64
		max  time.Duration
	}{
		{"zero rate means no delay", 0, 0},
		{"negative rate means no delay", -1, 0},
		{"NaN rate means no delay", math.NaN(), 0},
		{"infinite rate means no delay", math.Inf(1), 0},
		{"tiny rate is capped", 1e-300, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 100 {
				d := ExpDelay(r, tt.mu, tt.max)
				if d < 0 {
					t.Fatalf("negative delay %v", d)
				}
				if tt.max == 0 && d != 0 {
					t.Fatalf("got %v, want 0", d)
				}
				if tt.max > 0 && d > tt.max {
					t.Fatalf("got %v past cap %v", d, tt.max)
				}
			}
		})
	}
}

func BenchmarkSchedulerPushPop(b *testing.B) {
	s, _ := NewScheduler(4096, func(int) {})
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Now()
	for i := range 2048 {
		s.Push(base.Add(time.Duration(r.IntN(1e9))), i)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Push(base.Add(time.Duration(r.IntN(1e9))), 1)
		s.mu.Lock()
		s.pop()
		s.mu.Unlock()
	}
}
