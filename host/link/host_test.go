package link

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/sottonet/sotto/host/config"
)

func newHost(t testing.TB, role string, listen ...string) host.Host {
	t.Helper()
	cfg := config.Default()
	cfg.Role, cfg.Listen = role, listen
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHost(&cfg, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// transportOf names a multiaddr's transport the way config does: "tcp",
// "udp/quic-v1" or "tcp/ws".
func transportOf(a ma.Multiaddr) string {
	var names []string
	for _, p := range a.Protocols()[1:] {
		if p.Name == "p2p" {
			break
		}
		names = append(names, p.Name)
	}
	return strings.Join(names, "/")
}

// addrOf returns h's loopback listen address of a transport.
func addrOf(t *testing.T, h host.Host, transport string) ma.Multiaddr {
	t.Helper()
	for _, a := range h.Addrs() {
		if transportOf(a) == transport && strings.HasPrefix(a.String(), "/ip4/127.0.0.1/") {
			return a
		}
	}
	t.Fatalf("host has no %s address among %v", transport, h.Addrs())
	return nil
}

type received struct {
	frames [][]byte
	err    error
}

// frameSink makes h read frames on the mix protocol and report each stream.
func frameSink(h host.Host) <-chan received {
	got := make(chan received, 4)
	h.SetStreamHandler(MixProtocol, func(s network.Stream) {
		defer s.Close()
		var rec received
		r, err := NewReader(s, testPacketLength)
		if err != nil {
			rec.err = err
		}
		for rec.err == nil {
			buf := make([]byte, testPacketLength)
			if err := r.ReadFrame(buf); err != nil {
				if err != io.EOF {
					rec.err = err
					s.Reset()
				}
				break
			}
			rec.frames = append(rec.frames, buf)
		}
		got <- rec
	})
	return got
}

func wait(t *testing.T, got <-chan received) received {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("no stream reached the receiver")
		return received{}
	}
}

func TestHostsExchangeFramesOnTheMixProtocol(t *testing.T) {
	provider := newHost(t, config.RoleProvider,
		"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0/ws")
	got := frameSink(provider)

	tests := []struct {
		name      string
		transport string
		dialer    []string
	}{
		{"frames cross a TCP link", "tcp", []string{"/ip4/127.0.0.1/tcp/0"}},
		{"frames cross a QUIC link", "udp/quic-v1", []string{"/ip4/127.0.0.1/udp/0/quic-v1"}},
		{"frames cross a WebSocket link", "tcp/ws", []string{"/ip4/127.0.0.1/tcp/0/ws"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			role := config.RoleMix
			if tt.transport == "tcp/ws" {
				role = config.RoleProvider // only providers carry WebSocket
			}
			dialer := newHost(t, role, tt.dialer...)
			target := addrOf(t, provider, tt.transport)
			if err := dialer.Connect(t.Context(), peer.AddrInfo{ID: provider.ID(), Addrs: []ma.Multiaddr{target}}); err != nil {
				t.Fatal(err)
			}
			s, err := dialer.NewStream(t.Context(), provider.ID(), MixProtocol)
			if err != nil {
				t.Fatal(err)
			}
			if tr := transportOf(s.Conn().RemoteMultiaddr()); tr != tt.transport {
				t.Fatalf("stream went over %s, want %s", tr, tt.transport)
			}
			w, _ := NewWriter(s, testPacketLength)
			for i := range 3 {
				if err := w.WriteFrame(packet(byte(i + 1))); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			rec := wait(t, got)
			if rec.err != nil || len(rec.frames) != 3 {
				t.Fatalf("receiver got %d frames, error %v; want 3 frames", len(rec.frames), rec.err)
			}
			for i, f := range rec.frames {
				if !bytes.Equal(f, packet(byte(i+1))) {
					t.Errorf("frame %d arrived altered", i)
				}
			}
			res := <-ping.Ping(t.Context(), dialer, provider.ID())
			if res.Error != nil {
				t.Errorf("ping: %v", res.Error)
			}
		})
	}
}

func TestAPeerOnAnotherGeometryIsRefusedAtItsFirstFrame(t *testing.T) {
	mix := newHost(t, config.RoleMix, "/ip4/127.0.0.1/tcp/0")
	got := frameSink(mix)
	other := newHost(t, config.RoleMix, "/ip4/127.0.0.1/tcp/0")
	if err := other.Connect(t.Context(), peer.AddrInfo{ID: mix.ID(), Addrs: mix.Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := other.NewStream(t.Context(), mix.ID(), MixProtocol)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := NewWriter(s, testPacketLength+16)
	if err := w.WriteFrame(make([]byte, testPacketLength+16)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	rec := wait(t, got)
	if !errors.Is(rec.err, ErrFrameSize) || len(rec.frames) != 0 {
		t.Errorf("receiver got %d frames, error %v; want ErrFrameSize", len(rec.frames), rec.err)
	}
}

func TestNewHostRefusesAnAddressItCannotListenOn(t *testing.T) {
	tests := []struct {
		name, role, addr string
	}{
		{"a transport Sotto does not carry is refused", config.RoleProvider, "/ip4/127.0.0.1/udp/0/webrtc-direct"},
		{"a WebSocket listener on a mix is refused", config.RoleMix, "/ip4/127.0.0.1/tcp/0/ws"},
		{"a string that is no multiaddr is refused", config.RoleMix, "127.0.0.1:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Role, cfg.Listen = tt.role, []string{tt.addr}
			key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
			h, err := NewHost(&cfg, key)
			if err == nil {
				h.Close()
				t.Fatal("NewHost accepted the address")
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("NewHost = %v, want a config error", err)
			}
		})
	}
}

func TestTheStreamLimitPerPeerComesFromTheConfig(t *testing.T) {
	const limit = 4
	server := newHost(t, config.RoleMix, "/ip4/127.0.0.1/tcp/0")
	release := make(chan struct{})
	server.SetStreamHandler(MixProtocol, func(s network.Stream) {
		<-release // hold every stream open
		s.Reset()
	})
	defer close(release)

	cfg := config.Default()
	cfg.Role, cfg.Listen = config.RoleMix, []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Limits.MaxStreamsPerPeer = limit
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	client, err := NewHost(&cfg, key)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Connect(t.Context(), peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	opened := 0
	for range 2 * limit {
		s, err := client.NewStream(t.Context(), server.ID(), MixProtocol)
		if err != nil {
			if !errors.Is(err, network.ErrResourceLimitExceeded) {
				t.Fatalf("stream %d refused with %v, want a resource limit", opened+1, err)
			}
			break
		}
		defer s.Reset()
		opened++
	}
	// identify or ping may hold a slot for a moment, so fewer may open.
	if opened == 0 || opened > limit {
		t.Errorf("%d streams opened to one peer, want 1..%d", opened, limit)
	}
}
