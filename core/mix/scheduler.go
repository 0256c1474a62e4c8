// Package mix holds the Poisson mixing machinery of a Sotto node: a bounded
// scheduler that holds each packet until the release time its sender chose
// (the NodeDelay routing command, drawn by the sender from Exp(μ), as in
// Loopix), and the exponential delay draw itself.
//
// It sits between the replay check and forwarding in the packet pipeline:
// frame in → Sphinx unwrap → replay check → Scheduler.Push → (delay) →
// release callback → forward, deliver or drop. It does no I/O and holds no
// lock while the release callback runs, so pushes never wait on a release;
// the callback itself must not block (see NewScheduler).
package mix

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrQueueFull is returned by Push when the scheduler already holds its
// capacity of packets. The caller drops the packet and counts it: a mix
// under overload drops, it never grows without bound.
var ErrQueueFull = errors.New("mix: queue full")

// ErrStopped is returned by Push once Run has returned.
var ErrStopped = errors.New("mix: scheduler stopped")

// Scheduler holds items until their release time and hands them, in release
// time order, to a release function. Its memory is allocated once, at
// construction, for its full capacity: pushing and releasing allocate
// nothing. It is safe for concurrent Push from many goroutines; exactly one
// goroutine calls Run.
type Scheduler[T any] struct {
	release func(T)

	mu      sync.Mutex
	heap    []entry[T] // min-heap on at, then seq; len ≤ cap
	seq     uint64     // FIFO tie-break for equal release times
	stopped bool
	wake    chan struct{} // buffered(1): a new earliest item arrived

	due []T // Run's batch buffer, capacity = scheduler capacity
}

type entry[T any] struct {
	at   time.Time
	seq  uint64
	item T
}

// NewScheduler returns a scheduler that holds at most capacity items and
// calls release for each item when its time comes. capacity must be > 0.
//
// release runs on Run's goroutine, one item after another, and must not
// block: a release that waits (on a link, on storage) holds back every item
// due after it. A caller with I/O to do queues the item without blocking and
// drops it when that queue is full, as the node does with its links.
func NewScheduler[T any](capacity int, release func(T)) (*Scheduler[T], error) {
	if capacity <= 0 {
		return nil, errors.New("mix: scheduler capacity must be positive")
	}
	if release == nil {
		return nil, errors.New("mix: scheduler needs a release function")
	}
	return &Scheduler[T]{
		release: release,
		heap:    make([]entry[T], 0, capacity),
		wake:    make(chan struct{}, 1),
		due:     make([]T, 0, capacity),
	}, nil
}

// Push schedules item for release at time at. An at in the past releases it
// as soon as Run gets to it. It returns ErrQueueFull when the scheduler is at
// capacity and ErrStopped after Run has returned.
func (s *Scheduler[T]) Push(at time.Time, item T) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return ErrStopped
	}
	if len(s.heap) == cap(s.heap) {
		s.mu.Unlock()
		return ErrQueueFull
	}
	s.seq++
	s.heap = append(s.heap, entry[T]{at: at, seq: s.seq, item: item})
	s.up(len(s.heap) - 1)
	earliest := s.heap[0].seq == s.seq
	s.mu.Unlock()
	if earliest {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Len reports how many items are waiting.
func (s *Scheduler[T]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.heap)
}

// Cap reports the scheduler's capacity.
func (s *Scheduler[T]) Cap() int { return cap(s.heap) }

// Run releases items at their time until ctx is done. It then refuses
// further pushes and returns the items still waiting, in release order, so
// the caller can count them as dropped (or persist them). Run must be called
// at most once.
func (s *Scheduler[T]) Run(ctx context.Context) []T {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		s.mu.Lock()
		s.due = s.due[:0]
		for len(s.heap) > 0 && !s.heap[0].at.After(now) {
			s.due = append(s.due, s.pop())
		}
		var next time.Duration = -1
		if len(s.heap) > 0 {
			next = s.heap[0].at.Sub(now)
		}
		s.mu.Unlock()

		// Release outside the lock, so pushes never wait on the callback
		// (which must not block either: see NewScheduler).
		for i := range s.due {
			s.release(s.due[i])
			var zero T
			s.due[i] = zero // drop references for the GC
		}
		if len(s.due) > 0 {
			continue // time has moved while releasing; look again
		}

		if next >= 0 {
			timer.Reset(next)
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return s.stop()
		case <-s.wake:
		case <-timer.C:
		}
	}
}

func (s *Scheduler[T]) stop() []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	left := make([]T, 0, len(s.heap))
	for len(s.heap) > 0 {
		left = append(left, s.pop())
	}
	return left
}

func (s *Scheduler[T]) less(i, j int) bool {
	a, b := &s.heap[i], &s.heap[j]
	if a.at.Equal(b.at) {
		return a.seq < b.seq
	}
	return a.at.Before(b.at)
}

func (s *Scheduler[T]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			return
		}
		s.heap[i], s.heap[p] = s.heap[p], s.heap[i]
		i = p
	}
}

func (s *Scheduler[T]) down(i int) {
	n := len(s.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			return
		}
		s.heap[i], s.heap[m] = s.heap[m], s.heap[i]
		i = m
	}
}

// pop removes and returns the earliest item; the heap must be non-empty and
// s.mu held.
func (s *Scheduler[T]) pop() T {
	n := len(s.heap) - 1
	top := s.heap[0].item
	s.heap[0] = s.heap[n]
	s.heap[n] = entry[T]{}
	s.heap = s.heap[:n]
	if n > 0 {
		s.down(0)
	}
	return top
}
