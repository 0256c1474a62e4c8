package link

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sottonet/sotto/host/config"
)

type event struct {
	from   peer.ID
	packet []byte
	err    error
}

// inbound installs an Inbound on h that reports packets and refusals on
// one channel, admitting the given peers.
func inbound(h host.Host, admitted *PeerSet) <-chan event {
	events := make(chan event, 16)
	in := &Inbound{
		Admitted:     admitted,
		PacketLength: testPacketLength,
		Buffer:       func() Buffer { return byteBuffer(make([]byte, testPacketLength)) },
		Deliver:      func(from peer.ID, p Buffer) { events <- event{from: from, packet: p.Bytes()} },
		Refused:      func(from peer.ID, err error) { events <- event{from: from, err: err} },
	}
	h.SetStreamHandler(MixProtocol, in.Handle)
	return events
}

// send opens a mix stream from one host to another and writes frames of
// the given packet length.
func send(t *testing.T, from, to host.Host, length int, packets ...[]byte) {
	t.Helper()
	if err := from.Connect(t.Context(), peer.AddrInfo{ID: to.ID(), Addrs: to.Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := from.NewStream(t.Context(), to.ID(), MixProtocol)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := NewWriter(s, length)
	for _, p := range packets {
		if err := w.WriteFrame(p); err != nil {
			break // the receiver may already have reset the stream
		}
	}
	s.Close()
}

func next(t *testing.T, events <-chan event) event {
	t.Helper()
	select {
	case e := <-events:
		return e
	case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("the receiver reported nothing")
		return event{}
	}
}

func TestInbound(t *testing.T) {
	mix := newHost(t, config.RoleMix, "/ip4/127.0.0.1/tcp/0")
	member := newHost(t, config.RoleMix, "/ip4/127.0.0.1/tcp/0")
	stranger := newHost(t, config.RoleMix, "/ip4/127.0.0.1/tcp/0")
	var admitted PeerSet
	admitted.Replace([]peer.ID{member.ID()})
	events := inbound(mix, &admitted)

	t.Run("packets from a member of the document are delivered in order", func(t *testing.T) {
		send(t, member, mix, testPacketLength, packet(1), packet(2))
		for i := range 2 {
			e := next(t, events)
			if e.err != nil || e.from != member.ID() || !bytes.Equal(e.packet, packet(byte(i+1))) {
				t.Fatalf("event %d = from %s, error %v", i, e.from, e.err)
			}
		}
	})
	t.Run("a stream from a peer outside the document is refused", func(t *testing.T) {
		send(t, stranger, mix, testPacketLength, packet(3))
		if e := next(t, events); !errors.Is(e.err, ErrNotAdmitted) || e.from != stranger.ID() {
			t.Fatalf("event = from %s, packet %v, error %v; want ErrNotAdmitted", e.from, e.packet != nil, e.err)
		}
	})
	t.Run("a wrong-size frame cuts the stream after the good ones", func(t *testing.T) {
		send(t, member, mix, testPacketLength-1, make([]byte, testPacketLength-1))
		if e := next(t, events); !errors.Is(e.err, ErrFrameSize) {
			t.Fatalf("event = packet %v, error %v; want ErrFrameSize", e.packet != nil, e.err)
		}
	})
	t.Run("a peer admitted by a new document is read", func(t *testing.T) {
		admitted.Replace([]peer.ID{member.ID(), stranger.ID()})
		send(t, stranger, mix, testPacketLength, packet(4))
		if e := next(t, events); e.err != nil || !bytes.Equal(e.packet, packet(4)) {
			t.Fatalf("event = error %v", e.err)
		}
	})
}

func TestAnEmptyPeerSetAdmitsNoOne(t *testing.T) {
	var ps PeerSet
	if ps.Contains("") || ps.Contains(peer.ID("x")) {
		t.Error("the zero PeerSet admitted a peer")
	}
	ps.Replace(nil)
	if ps.Contains(peer.ID("x")) {
		t.Error("an empty PeerSet admitted a peer")
	}
}

func TestAMemberIsServedWhileAStrangerFloodsStreams(t *testing.T) {
	mix := newHost(t, config.RoleMix, "/ip4/127.0.0.1/tcp/0")
	member := newHost(t, config.RoleMix, "/ip4/127.0.0.1/tcp/0")
	stranger := newHost(t, config.RoleMix, "/ip4/127.0.0.1/tcp/0")
	var admitted PeerSet
	admitted.Replace([]peer.ID{member.ID()})
	delivered := make(chan []byte, 8)
	var refused atomic.Int64
	firstRefusal := make(chan struct{})
	var once sync.Once
	in := &Inbound{
		Admitted:     &admitted,
		PacketLength: testPacketLength,
		Buffer:       func() Buffer { return byteBuffer(make([]byte, testPacketLength)) },
		Deliver:      func(_ peer.ID, p Buffer) { delivered <- p.Bytes() },
		Refused: func(peer.ID, error) {
			refused.Add(1)
			once.Do(func() { close(firstRefusal) })
		},
	}
	mix.SetStreamHandler(MixProtocol, in.Handle)
	if err := stranger.Connect(t.Context(), peer.AddrInfo{ID: mix.ID(), Addrs: mix.Addrs()}); err != nil {
		t.Fatal(err)
	}

	const flood = 200
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		for range flood {
			s, err := stranger.NewStream(t.Context(), mix.ID(), MixProtocol)
			if err != nil {
				continue // refused by a limit: as good as reset
			}
			w, _ := NewWriter(s, testPacketLength)
			_ = w.WriteFrame(packet(0))
			s.Close()
		}
	}()
	send(t, member, mix, testPacketLength, packet(1), packet(2), packet(3))
	for i := range 3 {
		select {
		case p := <-delivered:
			if !bytes.Equal(p, packet(byte(i+1))) {
				t.Fatalf("packet %d arrived altered", i)
			}
		case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
			t.Fatal("the member's packets did not get through the flood")
		}
	}
	<-floodDone
	select {
	case <-firstRefusal:
	case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
		t.Error("no stream of the stranger was refused")
	}
	select {
	case p := <-delivered:
		t.Errorf("a packet of %d bytes from the stranger was delivered", len(p))
	default:
	}
}

// byteBuffer is the simplest Buffer.
type byteBuffer []byte

func (b byteBuffer) Bytes() []byte { return b }

// A peer removed from the admitted set loses its open stream at its next
// frame.
func TestInboundCutsAStreamWhenThePeerIsNoLongerAdmitted(t *testing.T) {
	var ps PeerSet
	from := peer.ID("member")
	ps.Replace([]peer.ID{from})
	delivered := 0
	in := &Inbound{
		Admitted:     &ps,
		PacketLength: testPacketLength,
		Buffer:       func() Buffer { return byteBuffer(make([]byte, testPacketLength)) },
		Deliver: func(peer.ID, Buffer) {
			delivered++
			ps.Replace(nil) // the next document no longer lists it
		},
	}
	var frames bytes.Buffer
	w, _ := NewWriter(&frames, testPacketLength)
	for range 3 {
		if err := w.WriteFrame(make([]byte, testPacketLength)); err != nil {
			t.Fatal(err)
		}
	}
	err := in.serve(from, &frames)
	if !errors.Is(err, ErrNotAdmitted) || delivered != 1 {
		t.Fatalf("serve = %v after %d packets, want ErrNotAdmitted after 1", err, delivered)
	}
}
