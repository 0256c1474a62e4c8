package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/link"
	"github.com/sottonet/sotto/interfaces"
)

// logLines is a log sink the tests read back: every refusal must leave a
// line an operator can see.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count is the number of lines holding every one of parts.
func (l *logLines) count(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.SplitSeq(l.buf.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// newLoggedNet is newTestNet with every node logging into one logLines,
// each line tagged node=<index in tn.nodes>.
func newLoggedNet(t *testing.T, spec netSpec) (*testNet, *logLines) {
	t.Helper()
	logs := &logLines{}
	spec.logTo = logs
	if os.Getenv("SOTTO_TEST_LOG") != "" {
		spec.logTo = io.MultiWriter(logs, os.Stderr)
	}
	return newTestNet(t, spec), logs
}

// newTestParams are newTestNet's network parameters for spec.
func newTestParams(spec netSpec) interfaces.NetworkParams {
	return interfaces.NetworkParams{
		Hops: uint8(spec.layers), PayloadLen: 2048, Layers: uint8(spec.layers),
		Mu: spec.mu, LambdaP: 1, LambdaL: 1, LambdaD: 1, LambdaM: spec.lambdaM, EpochPeriod: spec.period,
	}
}

// nodeIndex is the index in tn.nodes of the node with Sphinx ID id, as
// tagged in the log (node=<index>).
func (tn *testNet) nodeIndex(id [32]byte) int {
	for i, tnode := range tn.nodes {
		if tnode.n.id == id {
			return i
		}
	}
	tn.t.Fatalf("no node %x", id[:4])
	return -1
}

// deliverOne sends one packet gateway → every layer → destination and
// waits until the destination has stored it: the network still serves.
func deliverOne(t testing.TB, tn *testNet, within time.Duration) {
	t.Helper()
	er := tn.route()
	gw, dst := tn.nodeByID(er.providers[0].id), tn.nodeByID(er.providers[len(er.providers)-1].id)
	g := gw.n.geo
	var mailbox [32]byte
	rand.Read(mailbox[:])
	payload, err := clientproto.PackForward(g, nil, []byte("still served"))
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := sphinx.NewPacket(rand.Reader, g, tn.forwardPath(er.providers[0], er.providers[len(er.providers)-1], 0, &sphinx.Recipient{ID: mailbox}), payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.n.Inject(pkt); err != nil {
		t.Fatal(err)
	}
	waitFor(t, within, "a good packet to cross the network", func() bool {
		return len(fetchAll(t, dst.store, mailbox)) == 1
	})
}

// writeMix opens a mix stream from h to p, writes raw bytes and closes it.
// Errors are ignored: the receiver may reset the stream before all is written.
func writeMix(t testing.TB, h host.Host, p peer.ID, raw ...[]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p, link.MixProtocol)
	if err != nil {
		t.Fatalf("opening a mix stream: %v", err)
	}
	for _, b := range raw {
		if _, err := s.Write(b); err != nil {
			break
		}
	}
	_ = s.Close()
}

// frame is a well-formed frame carrying pkt.
func frame(pkt []byte) []byte {
	l := len(pkt)
	return append([]byte{link.FrameVersion, byte(l >> 16), byte(l >> 8), byte(l)}, pkt...)
}

// refusedAndLogged runs abuse, waits until cond holds (the metric moved)
// and until the victim logged a line holding every one of parts. The log
// is rate limited (one line per reason and second), so abuse is repeated
// once a second until its line shows; cond must tolerate repetition.
func refusedAndLogged(t *testing.T, logs *logLines, abuse func(), cond func() bool, parts ...string) {
	t.Helper()
	before := logs.count(parts...)
	abuse()
	waitFor(t, 10*time.Second, "the refusal to be counted", cond)
	deadline := time.Now().Add(5 * time.Second)
	last := time.Now()
	for logs.count(parts...) == before {
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q", parts)
		}
		if time.Since(last) > 1100*time.Millisecond {
			abuse()
			last = time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBadInputIsRefusedAndTheNodeServesOn abuses a mix of the first layer in
// every way a peer can, one after the other. Each abuse is counted in its
// metric and logged, and after each one a good packet still crosses the
// network through that mix and is delivered.
func TestBadInputIsRefusedAndTheNodeServesOn(t *testing.T) {
	tn, logs := newLoggedNet(t, netSpec{mixes: 2, providers: 2, layers: 2, mu: 200})
	er := tn.route()
	victimHop := er.layers[0][0]
	victim := tn.nodeByID(victimHop.id)
	vi := fmt.Sprintf("node=%d", tn.nodeIndex(victimHop.id))
	// The abuser is the destination provider: a node of the document, so
	// admitted, and not on the victim's path, so its links stay out of it.
	abuser := tn.nodeByID(er.providers[1].id).n.Host()
	g := victim.n.geo
	vm := victim.n.m
	refused := func(reason string) float64 { return value(t, vm.refused.WithLabelValues(reason)) }

	deliverOne(t, tn, 10*time.Second)

	// goodPacket is a valid packet whose first hop is the victim.
	goodPacket := func(t *testing.T) []byte {
		payload, _ := clientproto.PackForward(g, nil, nil)
		path := tn.forwardPath(er.providers[0], er.providers[1], 0, &sphinx.Recipient{})[1:]
		pkt, err := sphinx.NewPacket(rand.Reader, g, path, payload)
		if err != nil {
			t.Fatal(err)
		}
		return pkt
	}

	frameCases := []struct {
		name   string
		raw    []byte
		reason string
		err    string
	}{
		{"a frame of garbage bytes (unknown version) cuts the stream", bytes.Repeat([]byte{0xff}, 64), "frame", "unknown frame version"},
		{"a frame one byte short cuts the stream", frame(make([]byte, g.PacketLength-1)), "frame", "wrong frame size"},
		{"a frame one byte long cuts the stream", frame(make([]byte, g.PacketLength+1)), "frame", "wrong frame size"},
		{"a frame of the largest size cuts the stream", []byte{link.FrameVersion, 0xff, 0xff, 0xff}, "frame", "wrong frame size"},
		{"an empty frame cuts the stream", []byte{link.FrameVersion, 0, 0, 0}, "frame", "wrong frame size"},
		{"a stream that ends inside a frame is cut", frame(make([]byte, g.PacketLength))[:g.PacketLength/2], "read", "unexpected EOF"},
	}
	for _, c := range frameCases {
		t.Run(c.name, func(t *testing.T) {
			before := refused(c.reason)
			refusedAndLogged(t, logs, func() { writeMix(t, abuser, victim.n.Host().ID(), c.raw) },
				func() bool { return refused(c.reason) >= before+1 },
				vi, "mix stream cut", "reason="+c.reason, c.err)
			deliverOne(t, tn, 10*time.Second)
		})
	}

	packetCases := []struct {
		name    string
		packets func(t *testing.T) [][]byte
		err     string
	}{
		{"a well-framed packet of random bytes fails its MAC", func(t *testing.T) [][]byte {
			pkt := make([]byte, g.PacketLength)
			rand.Read(pkt)
			pkt[0], pkt[1] = 0, 0 // a valid version, so the MAC is what refuses it
			return [][]byte{pkt}
		}, "invalid header MAC"},
		{"a packet of another version is refused", func(t *testing.T) [][]byte {
			pkt := goodPacket(t)
			pkt[1] = 1
			return [][]byte{pkt}
		}, "invalid packet version"},
		{"a packet for a key the node does not hold fails its MAC", func(t *testing.T) [][]byte {
			k, err := sphinx.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			payload, _ := clientproto.PackForward(g, nil, nil)
			path := tn.forwardPath(er.providers[0], er.providers[1], 0, &sphinx.Recipient{})[1:]
			path[0].PublicKey = k.PublicKey()
			pkt, err := sphinx.NewPacket(rand.Reader, g, path, payload)
			if err != nil {
				t.Fatal(err)
			}
			return [][]byte{pkt}
		}, "invalid header MAC"},
		{"packets whose group element has low order are refused without a panic", func(t *testing.T) [][]byte {
			var pkts [][]byte
			for _, u := range lowOrderPoints(t) {
				pkt := goodPacket(t)
				copy(pkt[2:34], u[:])
				pkts = append(pkts, pkt)
			}
			return pkts
		}, "invalid group element"},
	}
	for _, c := range packetCases {
		t.Run(c.name, func(t *testing.T) {
			pkts := c.packets(t)
			before, inBefore := value(t, vm.drop[dropInvalid]), value(t, vm.inPeer)
			var raw []byte
			for _, p := range pkts {
				raw = append(raw, frame(p)...)
			}
			refusedAndLogged(t, logs, func() { writeMix(t, abuser, victim.n.Host().ID(), raw) },
				func() bool { return value(t, vm.drop[dropInvalid]) >= before+float64(len(pkts)) },
				vi, "packet refused", "reason=invalid", c.err)
			// Every frame read was a packet in; every one was dropped invalid.
			in := value(t, vm.inPeer) - inBefore
			if got := value(t, vm.drop[dropInvalid]) - before; got != in || int(in)%len(pkts) != 0 {
				t.Errorf("%v packets in, %v dropped invalid (want all, in multiples of %d)", in, got, len(pkts))
			}
			deliverOne(t, tn, 10*time.Second)
		})
	}

	t.Run("a peer outside the PKI document is refused", func(t *testing.T) {
		stranger := newStranger(t, tn)
		if err := stranger.Connect(t.Context(), peer.AddrInfo{ID: victim.n.Host().ID(), Addrs: victim.n.Host().Addrs()}); err != nil {
			t.Fatal(err)
		}
		before, inBefore := refused("not_admitted"), value(t, vm.inPeer)
		refusedAndLogged(t, logs, func() { writeMix(t, stranger, victim.n.Host().ID(), frame(goodPacket(t))) },
			func() bool { return refused("not_admitted") >= before+1 },
			vi, "mix stream cut", "reason=not_admitted", stranger.ID().String())
		if got := value(t, vm.inPeer) - inBefore; got != 0 {
			t.Errorf("%v packets of a stranger were read", got)
		}
		deliverOne(t, tn, 10*time.Second)
	})

	t.Run("no bad input was counted as anything but refused", func(t *testing.T) {
		for _, r := range []string{dropOverload, dropReplay, dropReplayErr, dropQueueFull, dropNoRoute, dropLinkFull, dropLink, dropShutdown} {
			if v := value(t, vm.drop[r]); v != 0 {
				t.Errorf("%v packets dropped for %q", v, r)
			}
		}
	})
}

// lowOrderPoints are the X25519 u-coordinates of small order (RFC 7748 §7,
// and the list libsodium and Go's crypto/ecdh refuse), plus non-canonical
// encodings of the same points: every one gives an all-zero shared secret.
func lowOrderPoints(t testing.TB) [][32]byte {
	hexes := []string{
		"0000000000000000000000000000000000000000000000000000000000000000", // 0
		"0100000000000000000000000000000000000000000000000000000000000000", // 1
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
		"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", // order 8
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p-1, order 2
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p (= 0)
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p+1 (= 1)
		"0000000000000000000000000000000000000000000000000000000000000080", // 0 with the top bit set
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880", // order 8, top bit set
	}
	var out [][32]byte
	for _, h := range hexes {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			t.Fatalf("bad test vector %s", h)
		}
		out = append(out, [32]byte(b))
	}
	return out
}

// newStranger is a libp2p host built exactly like a node's, with a fresh
// key that no PKI document names.
func newStranger(t testing.TB, tn *testNet) host.Host {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tn.nodeConfig(config.RoleMix, 1, t.TempDir())
	h, err := link.NewHost(cfg, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestAStreamFloodDoesNotStopDelivery: a stranger and an admitted node open
// mix streams as fast as they can (the stranger's are refused as not
// admitted, the member's carry garbage and are cut as bad frames). While
// the flood runs the victim's metrics endpoint answers and good packets
// still cross the network through it.
func TestAStreamFloodDoesNotStopDelivery(t *testing.T) {
	tn, logs := newLoggedNet(t, netSpec{mixes: 2, providers: 2, layers: 2, mu: 200})
	er := tn.route()
	victim := tn.nodeByID(er.layers[0][0].id)
	vi := fmt.Sprintf("node=%d", tn.nodeIndex(er.layers[0][0].id))
	vid := victim.n.Host().ID()
	member := tn.nodeByID(er.providers[1].id).n.Host()
	stranger := newStranger(t, tn)
	if err := stranger.Connect(t.Context(), peer.AddrInfo{ID: vid, Addrs: victim.n.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	deliverOne(t, tn, 10*time.Second)
	vm := victim.n.m
	notAdmitted0, frame0 := value(t, vm.refused.WithLabelValues("not_admitted")), value(t, vm.refused.WithLabelValues("frame"))

	ctx, stop := context.WithCancel(t.Context())
	var opened, failed atomic.Int64
	var wg sync.WaitGroup
	garbage := bytes.Repeat([]byte{0xee}, 256)
	good := frame(make([]byte, victim.n.geo.PacketLength))
	flood := func(h host.Host, payload []byte) {
		for ctx.Err() == nil {
			s, err := h.NewStream(ctx, vid, link.MixProtocol)
			if err != nil {
				failed.Add(1) // refused by a limit, or the flood is over
				// A pause, so that a flooder refused at once does not
				// spin on the test's own two cores.
				time.Sleep(time.Millisecond)
				continue
			}
			opened.Add(1)
			if _, err := s.Write(payload); err != nil {
				failed.Add(1)
			}
			_ = s.Close()
		}
	}
	for range 4 {
		wg.Go(func() { flood(stranger, good) })
	}
	for range 2 {
		wg.Go(func() { flood(member, garbage) })
	}
	t.Cleanup(func() { stop(); wg.Wait() })

	waitFor(t, 30*time.Second, "the flood to be refused", func() bool {
		return value(t, vm.refused.WithLabelValues("not_admitted")) > notAdmitted0+500 &&
			value(t, vm.refused.WithLabelValues("frame")) > frame0+500
	})
	t0 := time.Now()
	for range 3 {
		deliverOne(t, tn, 30*time.Second)
	}
	took := time.Since(t0)
	resp, err := http.Get("http://" + victim.n.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatalf("the victim's metrics endpoint during the flood: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `sotto_streams_refused_total{reason="not_admitted"}`) {
		t.Error("the metrics endpoint does not show the refusals")
	}
	stop()
	wg.Wait()

	na := value(t, vm.refused.WithLabelValues("not_admitted")) - notAdmitted0
	fr := value(t, vm.refused.WithLabelValues("frame")) - frame0
	t.Logf("flood: %d streams opened, %d refused by the flooders' side or a limit; victim refused %v not admitted and %v bad frames; 3 good packets delivered in %v during the flood",
		opened.Load(), failed.Load(), na, fr, took.Round(time.Millisecond))
	if value(t, vm.inPeer) == 0 {
		t.Error("no packet read from an admitted peer")
	}
	for _, parts := range [][]string{{vi, "mix stream cut", "reason=not_admitted"}, {vi, "mix stream cut", "reason=frame"}} {
		if logs.count(parts...) == 0 {
			t.Errorf("no log line with %q", parts)
		}
	}
	// The log is rate limited: a flood of thousands leaves a few lines.
	if n := logs.count(vi, "mix stream cut"); float64(n) > 2*(took.Seconds()+30) {
		t.Errorf("%d log lines for the flood: not rate limited", n)
	}
}

// TestInjectRefusesWrongSizes: a client packet of any size but the
// network's is refused with sphinx.ErrInvalidPacket before it enters the
// pipeline, and the provider serves on.
func TestInjectRefusesWrongSizes(t *testing.T) {
	tn := newTestNet(t, netSpec{mixes: 2, providers: 2, layers: 2, mu: 200})
	gw := tn.nodeByID(tn.route().providers[0].id)
	l := gw.n.geo.PacketLength
	for _, size := range []int{0, 1, l - 1, l + 1, 2 * l} {
		err := gw.n.Inject(make([]byte, size))
		if !errors.Is(err, sphinx.ErrInvalidPacket) {
			t.Errorf("Inject of %d bytes (packets are %d): %v, want ErrInvalidPacket", size, l, err)
		}
	}
	if err := gw.n.Inject(nil); !errors.Is(err, sphinx.ErrInvalidPacket) {
		t.Errorf("Inject(nil): %v, want ErrInvalidPacket", err)
	}
	if v := value(t, gw.n.m.inClient); v != 0 {
		t.Errorf("%v refused packets counted as client input", v)
	}
	deliverOne(t, tn, 10*time.Second)
	if v := value(t, gw.n.m.inClient); v != 1 {
		t.Errorf("%v client packets counted after one good one", v)
	}
}
