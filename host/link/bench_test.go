package link

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sottonet/sotto/host/config"
)

// BenchmarkFramesOverLoopback measures packet frames through one
// /sotto/mix/1.0.0 stream between two hosts on 127.0.0.1 (TCP or QUIC,
// Noise, yamux): the ceiling the network puts on a node, to set against
// core/sphinx's BenchmarkUnwrap.
func BenchmarkFramesOverLoopback(b *testing.B) {
	for _, tc := range []struct{ name, listen string }{
		{"tcp", "/ip4/127.0.0.1/tcp/0"},
		{"quic", "/ip4/127.0.0.1/udp/0/quic-v1"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			server := newHost(b, config.RoleMix, tc.listen)
			client := newHost(b, config.RoleMix, tc.listen)
			done := make(chan int, 1)
			server.SetStreamHandler(MixProtocol, func(s network.Stream) {
				defer s.Close()
				r, _ := NewReader(s, testPacketLength)
				buf := make([]byte, testPacketLength)
				n := 0
				for r.ReadFrame(buf) == nil {
					n++
				}
				done <- n
			})
			if err := client.Connect(b.Context(), peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
				b.Fatal(err)
			}
			s, err := client.NewStream(b.Context(), server.ID(), MixProtocol)
			if err != nil {
				b.Fatal(err)
			}
			w, _ := NewWriter(s, testPacketLength)
			pkt := packet(7)
			b.SetBytes(FrameHeaderSize + testPacketLength)
			b.ReportAllocs()
			sent := 0
			for b.Loop() {
				if err := w.WriteFrame(pkt); err != nil {
					b.Fatal(err)
				}
				sent++
			}
			s.Close()
			if got := <-done; got != sent {
				b.Fatalf("received %d of %d frames", got, sent)
			}
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "packets/s")
		})
	}
}
