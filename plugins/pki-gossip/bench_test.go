package pkigossip

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces"
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

// BenchmarkAdmission measures what admission costs at the defaults: under
// "open", one Argon2id evaluation (what a member pays to check a proof) and
// from it the expected price of one identity for one epoch (2^difficulty
// evaluations); under "endorsed", checking a proof of two endorsements.
// README.md ("Costs") quotes it. Run:
//
//	go test ./plugins/pki-gossip -run '^$' -bench Admission -benchtime 10x
func BenchmarkAdmission(b *testing.B) {
	b.Run("open/check", func(b *testing.B) {
		o := OpenPolicy{}
		o.setDefaults()
		id := newNode(1, interfaces.RoleMix).descriptor(b, "testnet", 1, 0).Descriptor.Identity
		b.ReportAllocs()
		var nonce uint64
		for b.Loop() {
			o.ticket("testnet", 1, id, nonce)
			nonce++
		}
		per := b.Elapsed().Seconds() / float64(b.N)
		b.ReportMetric(per*1e3, "ms/eval")
		b.ReportMetric(per*float64(uint64(1)<<o.Difficulty), "s/identity-epoch")
		b.ReportMetric(float64(o.MemoryKiB)/1024, "MiB/eval")
	})
	b.Run("endorsed/check-2-of-3", func(b *testing.B) {
		clock, _ := epoch.New(time.Now(), time.Minute, 0)
		roots := []ed25519.PrivateKey{rootKey(0), rootKey(1), rootKey(2)}
		cfg := Config{Network: "testnet", Admission: Admission{Policy: "endorsed", Endorsed: EndorsedPolicy{
			Roots: publicKeys(roots...), Threshold: 2}}}
		p, _ := newEndorsedPolicy(&cfg, clock)
		sd := newNode(1, interfaces.RoleMix).descriptor(b, "testnet", 1, 0)
		later := time.Now().Add(time.Hour)
		proof := endorsementProof(Endorse(roots[0], "testnet", sd.Descriptor.Identity, interfaces.RoleMix, later),
			Endorse(roots[1], "testnet", sd.Descriptor.Identity, interfaces.RoleMix, later))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.check(context.Background(), "", sd, proof); err != nil {
				b.Fatal(err)
			}
		}
	})
}
