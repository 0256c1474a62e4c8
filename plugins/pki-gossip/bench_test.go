package pkigossip

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkConvergence measures, for one epoch, how long N members on
// 127.0.0.1 take from the first publication until all hold the same
// document with all N descriptors, and how many bytes each member sends and
// receives meanwhile (libp2p's bandwidth counter: gossip, anti-entropy and
// control traffic together). Start-up and mesh forming are excluded. Run:
//
//	go test ./plugins/pki-gossip -run '^$' -bench Convergence -benchtime 1x
//
// The 100-member case is skipped with -short.
func BenchmarkConvergence(b *testing.B) {
	for _, n := range []int{20, 50, 100} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			if n > 20 && testing.Short() {
				b.Skip("large network skipped with -short")
			}
			var took time.Duration
			var perEpoch, idle float64
			total := func(members []*Member) int64 {
				var sum int64
				for _, m := range members {
					st := m.Stats()
					sum += st.BytesIn + st.BytesOut
				}
				return sum
			}
			for b.Loop() {
				b.StopTimer()
				cfg := testConfig(time.Now(), time.Minute)
				cfg.SyncInterval = time.Second
				members := startMembers(b, n, cfg, uint64(n))
				nodes := rolesFor(n)
				// libp2p's counters lag by up to a second; let meshes form,
				// then measure the idle traffic over two seconds.
				time.Sleep(2 * time.Second)
				s0 := total(members)
				time.Sleep(2 * time.Second)
				s1 := total(members)
				e := members[0].Clock().Now() + 1
				b.StartTimer()
				start := time.Now()
				publishAll(b, members, nodes, e, 0)
				_, _ = waitConverged(b, members, e, n, 60*time.Second)
				took += time.Since(start)
				b.StopTimer()
				time.Sleep(1500 * time.Millisecond)
				s2 := total(members)
				idle += float64(s1-s0) / float64(n) / 2
				perEpoch += float64(s2-s1) / float64(n)
				for _, m := range members {
					m.Close()
				}
				b.StartTimer()
			}
			b.ReportMetric(took.Seconds()/float64(b.N), "s/converge")
			b.ReportMetric(perEpoch/float64(b.N), "bytes/member")
			b.ReportMetric(idle/float64(b.N), "idle-bytes/member/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
