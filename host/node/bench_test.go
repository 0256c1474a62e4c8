package node

import (
	"crypto/rand"
	"math"
	"runtime"
	rtm "runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/link"
	"github.com/sottonet/sotto/interfaces"
)

// Benchmarks of one mix on loopback (see newBenchNet for the set-up and
// docs/BENCHMARKS.md, "Node", for a run). Each iteration is a whole
// measurement of several seconds, so -benchtime 1x is the way to run them;
// ns/op is then the iteration's length, not a figure of merit.
//
//	go test -run '^$' -bench 'Node' -benchtime 1x ./host/node

// BenchmarkNodePipeline measures, in one run:
//   - pkts/s: packets through the mix (unwrap, replay check with its group
//     commit to Badger, scheduler with NodeDelay 0, outbound link) from a
//     closed-loop load generator that keeps 512 packets in flight;
//   - share: that rate over bare sphinx Unwrap packets/s on GOMAXPROCS
//     goroutines, measured right after on the same machine;
//   - p50_us, p99_us (and p999_us, max_us): the delay the mix adds beyond
//     the NodeDelay (0) at half the measured rate, open loop: each packet
//     is timestamped before its frame is written by the load generator
//     and when the sink has read the forwarded frame. That includes two
//     loopback libp2p hops (Noise + yamux + TCP, in and out), so it is an
//     upper bound on the mix's own share.
//
// Beside p50_us..max_us it reports node_p50_us, node_p99_us and
// node_p999_us: the same packets' delay as the mix itself measured it
// (sotto_added_delay_seconds: from its read of the frame to its flush to
// the next hop), which leaves the two hops out.
func BenchmarkNodePipeline(b *testing.B) { benchPipeline(b, false) }

// BenchmarkNodePipelineNoFsync is BenchmarkNodePipeline with Badger's
// SyncWrites off (storage-badger's sync_writes: false): the replay tags'
// commit then survives a crash of the node, not a power loss of its
// machine, and costs a write instead of a write and an fsync.
func BenchmarkNodePipelineNoFsync(b *testing.B) { benchPipeline(b, true) }

func benchPipeline(b *testing.B, noFsync bool) { benchPipelineOn(b, noFsync, nil) }

// benchPipelineOn is benchPipeline with every node's store opened by
// storage (nil: Badger).
func benchPipelineOn(b *testing.B, noFsync bool, storage func(testing.TB, string) interfaces.Storage) {
	bn := newBenchNetStorage(b, 200, noFsync, nil, storage)
	key := bn.mixKey(b)
	const nThroughput = 20000
	var pps, bare, share float64
	var lat, hop latencies
	for b.Loop() {
		bn.sendClosedLoop(b, buildPackets(b, bn.g, bn.path(0), 1000)) // links up, pools warm
		pkts := buildPackets(b, bn.g, bn.path(0), nThroughput)
		drops0, fwd0 := bn.drops(b), value(b, bn.mix.n.m.outForward)
		elapsed := bn.sendClosedLoop(b, pkts)
		pps = nThroughput / elapsed.Seconds()
		if d := bn.drops(b) - drops0; d != 0 {
			b.Errorf("the mix dropped %v packets under closed-loop load", d)
		}
		if f := value(b, bn.mix.n.m.outForward) - fwd0; f != nThroughput {
			b.Errorf("the mix counted %v forwarded, want %d", f, nThroughput)
		}
		bare = bareUnwrapRate(b, bn.g, bn.path(0), 2*time.Second)
		share = pps / bare

		hop = bn.pacedLatency(b, nil, pps/2, 2*time.Second, 0)
		lat = bn.pacedLatency(b, key, pps/2, 3*time.Second, 0)
	}
	b.ReportMetric(pps, "pkts/s")
	b.ReportMetric(bare, "bare_unwrap_pkts/s")
	b.ReportMetric(share, "share")
	lat.report(b, "")
	hop.report(b, "hop_")
	bn.logStages(b)
	b.Logf("GOMAXPROCS %d, packet %d B, fsync %v: mix %.0f pkts/s, bare Unwrap %.0f pkts/s, share %.2f; at %.0f pkts/s added delay end to end p50 %.0f µs p99 %.0f µs p99.9 %.0f µs max %.0f µs (%d packets), in the mix p50 ≤ %.0f µs p99 ≤ %.0f µs p99.9 ≤ %.0f µs; one bare hop p50 %.0f µs p99 %.0f µs p99.9 %.0f µs max %.0f µs",
		runtime.GOMAXPROCS(0), bn.g.PacketLength, !noFsync, pps, bare, share, pps/2, lat.p50, lat.p99, lat.p999, lat.max, lat.n, lat.node.p50, lat.node.p99, lat.node.p999, hop.p50, hop.p99, hop.p999, hop.max)
	b.Logf("during the latency run the test process used %.2f cores and its threads were preempted by the kernel %.0f times a second; Go scheduling latency p99 ≤ %.0f µs, p99.9 ≤ %.0f µs", lat.cores, lat.preempt, lat.sched99, lat.sched999)
}

// BenchmarkNodeDelayedLatency is BenchmarkNodePipeline's latency run with a
// NodeDelay of 5 ms, at 5,000 pkts/s: the delay beyond the scheduled one
// once the replay tags' group commit (a Badger transaction with
// SyncWrites, fsync included) has the delay to hide behind, as DESIGN.md
// intends.
func BenchmarkNodeDelayedLatency(b *testing.B) {
	bn := newBenchNet(b, nil)
	key := bn.mixKey(b)
	var lat latencies
	for b.Loop() {
		bn.sendClosedLoop(b, buildPackets(b, bn.g, bn.path(0), 1000))
		lat = bn.pacedLatency(b, key, 5000, 3*time.Second, 5*time.Millisecond)
	}
	lat.report(b, "")
	bn.logStages(b)
	b.Logf("NodeDelay 5 ms at 5000 pkts/s: added delay end to end p50 %.0f µs p99 %.0f µs p99.9 %.0f µs max %.0f µs (%d packets), in the mix p50 ≤ %.0f µs p99 ≤ %.0f µs p99.9 ≤ %.0f µs; the test process used %.2f cores and was preempted %.0f times a second, Go scheduling latency p99 ≤ %.0f µs, p99.9 ≤ %.0f µs",
		lat.p50, lat.p99, lat.p999, lat.max, lat.n, lat.node.p50, lat.node.p99, lat.node.p999, lat.cores, lat.preempt, lat.sched99, lat.sched999)
}

// logStages logs the mix's own histograms of its stages over the whole
// benchmark: one unwrap, one group commit of replay tags.
func (bn *benchNet) logStages(b *testing.B) {
	m := bn.mix.n.m
	u50, umean, un := histQuantile(b, m.unwrap, 0.5)
	u99, _, _ := histQuantile(b, m.unwrap, 0.99)
	commit := m.pluginCall.WithLabelValues("storage", "insert_replay_tags")
	c50, cmean, cn := histQuantile(b, commit, 0.5)
	c99, _, _ := histQuantile(b, commit, 0.99)
	b.Logf("mix stages: unwrap mean %.0f µs, p50 ≤ %.0f µs, p99 ≤ %.0f µs (%d); replay-tag commit mean %.0f µs, p50 ≤ %.0f µs, p99 ≤ %.0f µs (%d commits, %.1f packets each)",
		umean*1e6, u50*1e6, u99*1e6, un, cmean*1e6, c50*1e6, c99*1e6, cn, float64(un)/float64(max(cn, 1)))
}

// latencies are added delays in µs: measured end to end (load generator
// to sink), and node is the mix's own sotto_added_delay_seconds over the
// same packets (upper bounds of its buckets).
type latencies struct {
	n                   int
	p50, p99, p999, max float64
	node                struct{ p50, p99, p999 float64 }
	// What the test process (mix, load generator, sink, idle nodes) did
	// meanwhile: CPU cores it used, and the Go scheduler's latency (time
	// runnable goroutines waited for a P; runtime/metrics), p99 and p99.9
	// in µs.
	cores, sched99, sched999 float64
	// preempt is the process's involuntary context switches per second.
	preempt float64
}

func (l latencies) report(b *testing.B, prefix string) {
	b.ReportMetric(l.p50, prefix+"p50_us")
	b.ReportMetric(l.p99, prefix+"p99_us")
	b.ReportMetric(l.p999, prefix+"p999_us")
	b.ReportMetric(l.max, prefix+"max_us")
	if l.node.p50 != 0 {
		b.ReportMetric(l.node.p50, prefix+"node_p50_us")
		b.ReportMetric(l.node.p99, prefix+"node_p99_us")
		b.ReportMetric(l.node.p999, prefix+"node_p999_us")
	}
}

// buckets is a snapshot of a histogram's cumulative bucket counts.
type buckets struct {
	upper []float64
	cum   []uint64
}

func snapshot(b testing.TB, h prometheus.Histogram) buckets {
	b.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		b.Fatal(err)
	}
	var s buckets
	for _, bk := range m.GetHistogram().GetBucket() {
		s.upper = append(s.upper, bk.GetUpperBound())
		s.cum = append(s.cum, bk.GetCumulativeCount())
	}
	return s
}

// quantile is the upper bound (in µs) of the bucket that holds quantile q
// of the observations made between before and s; +Inf past the last.
func (s buckets) quantile(before buckets, q float64) float64 {
	total := s.cum[len(s.cum)-1] - before.cum[len(before.cum)-1]
	var count uint64
	for i := range s.cum {
		count = s.cum[i] - before.cum[i]
		if total > 0 && float64(count) >= q*float64(total) {
			return s.upper[i] * 1e6
		}
	}
	return math.Inf(1)
}

// pacedLatency sends packets with the given NodeDelay at rate for d, open
// loop, and returns the delays the mix added beyond NodeDelay. With a nil
// key it measures the bare hop instead: random frames from the mix's host
// straight to the sink.
func (bn *benchNet) pacedLatency(b *testing.B, key *sphinx.PrivateKey, rate float64, d time.Duration, delay time.Duration) latencies {
	b.Helper()
	n := int(rate * d.Seconds())
	var pkts [][]byte
	var ids map[[8]byte]int
	if key != nil {
		pkts = buildPackets(b, bn.g, bn.path(delay), n)
		ids = forwardedIDs(b, bn.g, key, pkts)
	} else {
		pkts = make([][]byte, n)
		ids = make(map[[8]byte]int, n)
		for i := range pkts {
			pkts[i] = make([]byte, bn.g.PacketLength)
			rand.Read(pkts[i])
			ids[[8]byte(pkts[i][2:10])] = i
		}
	}
	tr := &tracking{ids: ids, arrived: make([]atomic.Int64, n), base: time.Now()}
	bn.sink.track.Store(tr)
	defer bn.sink.track.Store(nil)
	done := bn.sink.expect(bn.sink.count.Load() + int64(n))
	drops0 := bn.drops(b)
	open := bn.loadStream
	if key == nil {
		open = bn.hopStream
	}
	s := open(b)
	before, run0 := snapshot(b, bn.mix.n.m.added), readRun()
	sent := bn.sendPaced(b, s, pkts, rate, tr.base)
	bn.wait(b, done, 30*time.Second, "paced run")
	after, run1 := snapshot(b, bn.mix.n.m.added), readRun()
	if dr := bn.drops(b) - drops0; dr != 0 {
		b.Errorf("the mix dropped %v packets at %.0f pkts/s", dr, rate)
	}
	if u := tr.unknown.Load(); u != 0 {
		b.Errorf("the sink got %d packets it cannot name", u)
	}
	us := make([]float64, 0, n)
	for i := range n {
		a := tr.arrived[i].Load()
		if a == 0 {
			b.Fatalf("packet %d not seen by the sink", i)
		}
		us = append(us, float64(a-sent[i]-delay.Nanoseconds())/1e3)
	}
	slices.Sort(us)
	q := func(p float64) float64 { return us[min(len(us)-1, int(p*float64(len(us))))] }
	l := latencies{n: n, p50: q(0.5), p99: q(0.99), p999: q(0.999), max: us[len(us)-1]}
	l.cores, l.sched99, l.sched999 = run1.since(run0)
	l.preempt = run1.preemptions(run0)
	if key != nil {
		l.node.p50, l.node.p99, l.node.p999 = after.quantile(before, 0.5), after.quantile(before, 0.99), after.quantile(before, 0.999)
	}
	return l
}

// forwardedIDs names each packet by the first bytes of the group element it
// will carry after the mix (its blinded α), found by unwrapping a copy with
// the mix's key.
func forwardedIDs(b *testing.B, g *sphinx.Geometry, key *sphinx.PrivateKey, pkts [][]byte) map[[8]byte]int {
	b.Helper()
	ids := make([][8]byte, len(pkts))
	var wg sync.WaitGroup
	w := runtime.GOMAXPROCS(0)
	for i := range w {
		wg.Go(func() {
			u := sphinx.NewUnwrapper(g, key)
			var res sphinx.Result
			work := make([]byte, g.PacketLength)
			for j := i; j < len(pkts); j += w {
				copy(work, pkts[j])
				if err := u.Unwrap(work, &res); err != nil {
					panic(err)
				}
				ids[j] = [8]byte(work[2:10])
			}
		})
	}
	wg.Wait()
	m := make(map[[8]byte]int, len(pkts))
	for i, id := range ids {
		m[id] = i
	}
	if len(m) != len(pkts) {
		b.Fatal("two packets share a forwarded α prefix")
	}
	return m
}

// BenchmarkNodeQueuedPacketMemory fills the mix's scheduler with 20,000
// packets held for 50 s and reports the heap they take (HeapInuse after
// two GCs, after minus before, the pre-built packets alive in both) per
// queued packet, and that over the packet length.
func BenchmarkNodeQueuedPacketMemory(b *testing.B) {
	const n = 20000
	var perInuse, perAlloc float64
	var plen int
	for b.Loop() {
		// μ 0.5/s: the mix accepts NodeDelays up to 50 s (25 means).
		bn := newBenchNetSpec(b, 0.5, false, func(c *config.Config) { c.Mixing.QueueCapacity = 32768 })
		plen = bn.g.PacketLength
		bn.sendClosedLoop(b, buildPackets(b, bn.g, bn.path(0), 1000))
		pkts := buildPackets(b, bn.g, bn.path(50*time.Second), n)
		before := heap()
		s := bn.loadStream(b)
		fw, _ := link.NewWriter(s, bn.g.PacketLength)
		for i, p := range pkts {
			// Stay well inside the input queue (4096): the mix would drop.
			for i-bn.mix.n.sched.Len() > 1024 {
				if d := bn.drops(b); d != 0 {
					b.Fatalf("the mix dropped %v packets while the scheduler filled", d)
				}
				time.Sleep(time.Millisecond)
			}
			if err := fw.WriteFrame(p); err != nil {
				b.Fatal(err)
			}
		}
		waitFor(b, 30*time.Second, "the scheduler to hold every packet", func() bool { return bn.mix.n.sched.Len() == n })
		s.Close()
		if d := bn.drops(b); d != 0 {
			b.Fatalf("the mix dropped %v packets", d)
		}
		after := heap()
		runtime.KeepAlive(pkts)
		perInuse = float64(after.HeapInuse-before.HeapInuse) / n
		perAlloc = float64(after.HeapAlloc-before.HeapAlloc) / n
	}
	b.ReportMetric(perInuse, "bytes/queued")
	b.ReportMetric(perAlloc, "alloc_bytes/queued")
	b.ReportMetric(perInuse/float64(plen), "x_packet")
	b.Logf("packet %d B, pipeline packet struct %d B; per queued packet: HeapInuse %.0f B (%.2f × packet), HeapAlloc %.0f B; the scheduler's own slots (%d B each) are allocated at start for its capacity",
		plen, unsafe.Sizeof(packet{}), perInuse, perInuse/float64(plen), perAlloc, unsafe.Sizeof(time.Time{})+16)
}

func heap() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// histQuantile estimates quantile q of a Prometheus histogram from its
// buckets (the upper bound of the bucket holding it) and returns the mean.
func histQuantile(b testing.TB, h prometheus.Observer, q float64) (upper, mean float64, count uint64) {
	var m dto.Metric
	if err := h.(prometheus.Metric).Write(&m); err != nil {
		b.Fatal(err)
	}
	hh := m.GetHistogram()
	count = hh.GetSampleCount()
	if count == 0 {
		return 0, 0, 0
	}
	mean = hh.GetSampleSum() / float64(count)
	target := uint64(q * float64(count))
	for _, bk := range hh.GetBucket() {
		if bk.GetCumulativeCount() >= target {
			return bk.GetUpperBound(), mean, count
		}
	}
	return math.Inf(1), mean, count
}

// runSample is the process's CPU time and the Go scheduler's latency
// histogram at one moment.
type runSample struct {
	at    time.Time
	cpu   time.Duration
	sched *rtm.Float64Histogram
	// nivcsw is the process's involuntary context switches: its threads
	// taken off a core by the kernel while they could still run.
	nivcsw int64
}

func readRun() runSample {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	ss := []rtm.Sample{{Name: "/sched/latencies:seconds"}}
	rtm.Read(ss)
	return runSample{at: time.Now(), cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), sched: ss[0].Value.Float64Histogram(), nivcsw: ru.Nivcsw}
}

// preemptions is the process's involuntary context switches per second
// between r0 and r.
func (r runSample) preemptions(r0 runSample) float64 {
	return float64(r.nivcsw-r0.nivcsw) / r.at.Sub(r0.at).Seconds()
}

// since returns the cores used between r0 and r, and the p99 and p99.9 of
// the scheduling latencies seen meanwhile (bucket upper bounds, µs).
func (r runSample) since(r0 runSample) (cores, p99, p999 float64) {
	cores = (r.cpu - r0.cpu).Seconds() / r.at.Sub(r0.at).Seconds()
	var total uint64
	for i := range r.sched.Counts {
		total += r.sched.Counts[i] - r0.sched.Counts[i]
	}
	q := func(p float64) float64 {
		var c uint64
		for i := range r.sched.Counts {
			c += r.sched.Counts[i] - r0.sched.Counts[i]
			if total > 0 && float64(c) >= p*float64(total) {
				return r.sched.Buckets[i+1] * 1e6
			}
		}
		return math.Inf(1)
	}
	return cores, q(0.99), q(0.999)
}
