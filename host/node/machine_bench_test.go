//go:build linux

package node

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Probes of the machine the node benchmarks run on, not of the node: what a
// latency target below a millisecond has to fit into (docs/BENCHMARKS.md,
// "Node"). Like the node benchmarks, one iteration is a whole measurement:
//
//	go test -run '^$' -bench 'Machine' -benchtime 1x ./host/node

// BenchmarkMachineCPUGaps spins GOMAXPROCS goroutines that do nothing but
// read the clock for 3 s, and reports the time they lost in gaps over
// 200 µs (the kernel ran something else on their core): lost_pct is the
// share of the run the worst goroutine lost, max_gap_us its longest gap.
// Any stage of the pipeline that is running when such a gap opens waits
// it out.
func BenchmarkMachineCPUGaps(b *testing.B) {
	const d = 3 * time.Second
	const threshold = 200 * time.Microsecond
	var lost, longest time.Duration
	var gaps int
	for b.Loop() {
		type result struct {
			lost, longest time.Duration
			gaps          int
		}
		n := runtime.GOMAXPROCS(0)
		res := make([]result, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				r := &res[i]
				end := time.Now().Add(d)
				last := time.Now()
				for {
					now := time.Now()
					if now.After(end) {
						return
					}
					if g := now.Sub(last); g > threshold {
						r.gaps++
						r.lost += g
						r.longest = max(r.longest, g)
					}
					last = now
				}
			})
		}
		wg.Wait()
		for _, r := range res {
			if r.lost > lost {
				lost = r.lost
			}
			longest = max(longest, r.longest)
			gaps += r.gaps
		}
	}
	b.ReportMetric(100*lost.Seconds()/d.Seconds(), "lost_pct")
	b.ReportMetric(float64(longest.Microseconds()), "max_gap_us")
	b.ReportMetric(float64(gaps), "gaps")
}

// BenchmarkMachineFdatasync writes 512 bytes and fdatasyncs them, 2,000
// times, in the benchmark's temporary directory (the disk the node tests'
// Badger stores use), into a preallocated file and appending to a new one,
// and reports p50 and p99 of each: the floor under a replay-tag commit with
// SyncWrites, which a packet with NodeDelay 0 waits for.
func BenchmarkMachineFdatasync(b *testing.B) {
	const n = 2000
	var pre, app []time.Duration
	for b.Loop() {
		dir := b.TempDir()
		f, err := os.OpenFile(filepath.Join(dir, "prealloc"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, n*512); err != nil {
			b.Skipf("fallocate: %v", err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		g, err := os.OpenFile(filepath.Join(dir, "append"), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 512)
		pre, app = pre[:0], app[:0]
		for i := range n {
			t0 := time.Now()
			if _, err := f.WriteAt(buf, int64(i)*512); err != nil {
				b.Fatal(err)
			}
			if err := syscall.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
			pre = append(pre, time.Since(t0))
			t0 = time.Now()
			if _, err := g.Write(buf); err != nil {
				b.Fatal(err)
			}
			if err := syscall.Fdatasync(int(g.Fd())); err != nil {
				b.Fatal(err)
			}
			app = append(app, time.Since(t0))
		}
		f.Close()
		g.Close()
	}
	for _, s := range []struct {
		name string
		ds   []time.Duration
	}{{"prealloc", pre}, {"append", app}} {
		slices.Sort(s.ds)
		b.ReportMetric(float64(s.ds[len(s.ds)/2].Microseconds()), s.name+"_p50_us")
		b.ReportMetric(float64(s.ds[len(s.ds)*99/100].Microseconds()), s.name+"_p99_us")
	}
}
