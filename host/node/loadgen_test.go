package node

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/link"
	"github.com/sottonet/sotto/interfaces"
)

// benchNet is a network for measuring one mix: three layers (so the
// default 5-hop geometry, 3130-byte packets) and one provider. Only the
// last layer's mix works (the last layer forwards to providers, so the
// stratified order allows the path below): the load generator and the sink both run on the
// provider's libp2p host, which is a node of the document, so the mix
// admits its streams and forwards to it. The packets' path is
// [mix, provider]; the provider's own mix-stream handler is replaced by the
// sink, so the provider does no Sphinx work and all the CPU the pipeline
// gets is what the mix uses (plus the load generator's and the sink's
// libp2p I/O, which run in the same process).
type benchNet struct {
	tn   *testNet
	mix  *testNode
	prov *testNode
	g    *sphinx.Geometry
	sink *sink
	path func(delay time.Duration) []sphinx.PathHop
}

func newBenchNet(b *testing.B, tweak func(*config.Config)) *benchNet {
	return newBenchNetSpec(b, 200, false, tweak)
}

// newBenchNetSpec is newBenchNet with the document's μ (per second: a node
// refuses NodeDelays over 25/μ, so long holds need a small μ) and, with
// noFsync, Badger stores that do not fsync their commits.
func newBenchNetSpec(b *testing.B, mu float64, noFsync bool, tweak func(*config.Config)) *benchNet {
	b.Helper()
	return newBenchNetStorage(b, mu, noFsync, tweak, nil)
}

// newBenchNetStorage is newBenchNetSpec with every node's store opened by
// storage (nil: Badger; see netSpec.storage).
func newBenchNetStorage(b *testing.B, mu float64, noFsync bool, tweak func(*config.Config), storage func(testing.TB, string) interfaces.Storage) *benchNet {
	b.Helper()
	tn := newTestNet(b, netSpec{mixes: 3, providers: 1, layers: 3, mu: mu, period: 10 * time.Minute, noFsync: noFsync, storage: storage,
		tweak: func(c *config.Config) {
			c.Mixing.UnwrapWorkers = runtime.GOMAXPROCS(0)
			if tweak != nil {
				tweak(c)
			}
		}})
	er := tn.route()
	last := er.layers[len(er.layers)-1][0]
	bn := &benchNet{tn: tn, mix: tn.nodeByID(last.id), prov: tn.nodeByID(er.providers[0].id)}
	bn.g = bn.mix.n.geo
	bn.path = func(delay time.Duration) []sphinx.PathHop {
		return []sphinx.PathHop{
			pathHop(b, last, er.epoch, &sphinx.NodeDelay{Delay: uint32(delay / time.Millisecond)}),
			pathHop(b, er.providers[0], er.epoch, &sphinx.Recipient{}),
		}
	}
	bn.sink = &sink{length: bn.g.PacketLength, tokens: make(chan struct{}, window)}
	bn.prov.n.Host().SetStreamHandler(link.MixProtocol, bn.sink.handle)
	return bn
}

// mixKey is the measured mix's Sphinx key for the current epoch.
func (bn *benchNet) mixKey(b *testing.B) *sphinx.PrivateKey {
	k, ok := bn.mix.keys.Sphinx(bn.tn.route().epoch)
	if !ok {
		b.Fatal("the mix holds no key for the current epoch")
	}
	return k
}

// drops is the sum of the mix's drop counters.
func (bn *benchNet) drops(b *testing.B) float64 {
	var d float64
	for _, c := range bn.mix.n.m.drop {
		d += value(b, c)
	}
	return d
}

// buildPackets makes n distinct packets for path on every core.
func buildPackets(b *testing.B, g *sphinx.Geometry, path []sphinx.PathHop, n int) [][]byte {
	b.Helper()
	payload, err := clientproto.PackForward(g, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	pkts := make([][]byte, n)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	w := runtime.GOMAXPROCS(0)
	for i := range w {
		wg.Go(func() {
			for j := i; j < n; j += w {
				p, err := sphinx.NewPacket(rand.Reader, g, path, payload)
				if err != nil {
					failed.Store(&err)
					return
				}
				pkts[j] = p
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	return pkts
}

// sink reads the frames the mix forwards. It counts them, hands a token
// back to a closed-loop sender for each, and, when ids is set, records the
// arrival time of each known packet (found by the first bytes of its
// blinded group element, which the test computed by unwrapping it first).
type sink struct {
	length int
	count  atomic.Int64
	tokens chan struct{} // closed-loop window; empty in open loop
	track  atomic.Pointer[tracking]
	want   atomic.Int64 // count at which done is closed
	done   atomic.Pointer[chan struct{}]
}

// tracking is what the sink records during a timed run.
type tracking struct {
	ids     map[[8]byte]int // read-only during the run
	arrived []atomic.Int64  // ns since base, per packet index
	base    time.Time
	unknown atomic.Int64
}

// window is the closed-loop sender's bound on packets in flight.
const window = 512

func (s *sink) handle(st network.Stream) {
	defer st.Reset()
	r, _ := link.NewReader(bufio.NewReaderSize(st, 64<<10), s.length)
	buf := make([]byte, s.length)
	for {
		if err := r.ReadFrame(buf); err != nil {
			return
		}
		if tr := s.track.Load(); tr != nil {
			now := time.Since(tr.base).Nanoseconds()
			if i, ok := tr.ids[[8]byte(buf[2:10])]; ok {
				tr.arrived[i].Store(now)
			} else {
				tr.unknown.Add(1)
			}
		}
		select {
		case <-s.tokens:
		default:
		}
		if c := s.count.Add(1); c == s.want.Load() {
			if d := s.done.Load(); d != nil {
				close(*d)
			}
		}
	}
}

// expect arms the sink to close the returned channel when its count
// reaches total.
func (s *sink) expect(total int64) <-chan struct{} {
	d := make(chan struct{})
	s.want.Store(total)
	s.done.Store(&d)
	if s.count.Load() >= total {
		s.done.Store(nil)
		close(d)
	}
	return d
}

// wait waits for done, failing after timeout with what the mix dropped.
func (bn *benchNet) wait(b *testing.B, done <-chan struct{}, timeout time.Duration, what string) {
	b.Helper()
	select {
	case <-done:
	case <-time.After(timeout):
		b.Fatalf("%s: the sink has %d packets after %v; mix dropped %v, queue %d", what, bn.sink.count.Load(), timeout, bn.drops(b), bn.mix.n.sched.Len())
	}
}

// loadStream opens the load generator's mix stream from the provider to
// the mix.
func (bn *benchNet) loadStream(b *testing.B) network.Stream {
	b.Helper()
	return mixStream(b, bn.prov.n.Host(), bn.mix.n.Host().ID())
}

// hopStream is a mix stream from the mix's host straight to the sink,
// bypassing the mix's pipeline: one bare loopback libp2p hop.
func (bn *benchNet) hopStream(b *testing.B) network.Stream {
	b.Helper()
	return mixStream(b, bn.mix.n.Host(), bn.prov.n.Host().ID())
}

func mixStream(b *testing.B, from host.Host, to peer.ID) network.Stream {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := from.NewStream(ctx, to, link.MixProtocol)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// sendClosedLoop writes pkts to the mix as fast as the mix forwards them:
// at most window packets are between the load generator and the sink, so
// the mix is always busy and never overloaded (its input queue holds 4096).
// It returns when the last packet has arrived, and the time from the
// first write to then.
func (bn *benchNet) sendClosedLoop(b *testing.B, pkts [][]byte) time.Duration {
	b.Helper()
	s := bn.loadStream(b)
	defer s.Close()
	bw := bufio.NewWriterSize(s, 64<<10)
	fw, _ := link.NewWriter(bw, bn.g.PacketLength)
	done := bn.sink.expect(bn.sink.count.Load() + int64(len(pkts)))
	t0 := time.Now()
	for _, p := range pkts {
		select {
		case bn.sink.tokens <- struct{}{}:
		default:
			if err := bw.Flush(); err != nil {
				b.Fatal(err)
			}
			select {
			case bn.sink.tokens <- struct{}{}:
			case <-time.After(10 * time.Second):
				b.Fatalf("the window did not open in 10s: mix dropped %v", bn.drops(b))
			}
		}
		if err := fw.WriteFrame(p); err != nil {
			b.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	bn.wait(b, done, 30*time.Second, "closed loop")
	return time.Since(t0)
}

// sendPaced writes pkts at rate packets/s (open loop: the schedule does
// not wait for the mix), one frame per write, and returns each packet's
// send time in ns since base.
func (bn *benchNet) sendPaced(b *testing.B, s network.Stream, pkts [][]byte, rate float64, base time.Time) []int64 {
	b.Helper()
	defer s.Close()
	fw, _ := link.NewWriter(s, bn.g.PacketLength)
	sent := make([]int64, len(pkts))
	gap := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; i < len(pkts); {
		now := time.Now()
		for ; i < len(pkts) && !start.Add(time.Duration(i)*gap).After(now); i++ {
			sent[i] = time.Since(base).Nanoseconds()
			if err := fw.WriteFrame(pkts[i]); err != nil {
				b.Fatal(err)
			}
		}
		if i < len(pkts) {
			time.Sleep(time.Until(start.Add(time.Duration(i) * gap)))
		}
	}
	return sent
}

// bareUnwrapRate is sphinx Unwrap packets/s on GOMAXPROCS goroutines, each
// with its own Unwrapper (as the node's workers), for about d.
func bareUnwrapRate(b *testing.B, g *sphinx.Geometry, path []sphinx.PathHop, d time.Duration) float64 {
	b.Helper()
	k, err := sphinx.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	path[0].PublicKey = k.PublicKey()
	pkt := buildPackets(b, g, path, 1)[0]
	var total atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	deadline := t0.Add(d)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			u := sphinx.NewUnwrapper(g, k)
			var res sphinx.Result
			work := make([]byte, len(pkt))
			n := int64(0)
			for ; n%32 != 0 || time.Now().Before(deadline); n++ {
				copy(work, pkt)
				if err := u.Unwrap(work, &res); err != nil {
					panic(fmt.Sprintf("bare unwrap: %v", err))
				}
			}
			total.Add(n)
		})
	}
	wg.Wait()
	return float64(total.Load()) / time.Since(t0).Seconds()
}
