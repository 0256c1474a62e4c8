package sphinx

import (
	"bytes"
	"errors"
	"testing"
)

func TestGeometryMatchesKatzenpost(t *testing.T) {
	tests := []struct {
		name                                           string
		payload, hops                                  int
		withSURB                                       bool
		header, routing, surb, forward, packet, perHop int
	}{
		{"the vectors' geometry without SURB", 103, 5, false, 476, 410, 572, 103, 611, 82},
		{"the vectors' geometry with SURB", 103, 5, true, 476, 410, 572, 677, 1185, 82},
		{"the Sotto default", 2048, 5, true, 476, 410, 572, 2622, 3130, 82},
		{"a one-hop network", 100, 1, false, 148, 82, 244, 100, 280, 82},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGeometry(tt.payload, tt.hops, tt.withSURB)
			if err != nil {
				t.Fatal(err)
			}
			got := []int{g.HeaderLength, g.RoutingInfoLength, g.SURBLength, g.ForwardPayloadLength, g.PacketLength, g.PerHopRoutingInfoLength}
			want := []int{tt.header, tt.routing, tt.surb, tt.forward, tt.packet, tt.perHop}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%s: got %v, want %v", g, got, want)
				}
			}
		})
	}
	if *DefaultGeometry() != *mustGeometry(t, DefaultUserPayloadLength, DefaultHops, true) {
		t.Error("DefaultGeometry differs from its parameters")
	}
}

func mustGeometry(t *testing.T, p, h int, s bool) *Geometry {
	t.Helper()
	g, err := NewGeometry(p, h, s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGeometryRefusesBadParameters(t *testing.T) {
	for _, tt := range []struct{ payload, hops int }{{0, 5}, {-1, 5}, {100, 0}, {100, 65}, {1<<20 + 1, 5}} {
		if _, err := NewGeometry(tt.payload, tt.hops, false); !errors.Is(err, ErrInvalidGeometry) {
			t.Errorf("NewGeometry(%d, %d): got %v", tt.payload, tt.hops, err)
		}
	}
}

func TestParseCommandsRefusesMalformedBlocks(t *testing.T) {
	nh := (&NextNodeHop{}).AppendTo(nil)
	sr := (&SURBReply{}).AppendTo(nil)
	tests := []struct {
		name  string
		block []byte
	}{
		{"an unknown tag", []byte{0x7f, 0, 0}},
		{"a truncated NextNodeHop", nh[:40]},
		{"a truncated NodeDelay", []byte{0x80, 1, 2}},
		{"a lone nonzero byte", []byte{0x02}},
		{"a nonzero byte after the end marker", []byte{0x00, 0x00, 0x01}},
		{"two NextNodeHops", append(bytes.Clone(nh), nh...)},
		{"two SURBReplies", append(bytes.Clone(sr), sr...)},
		{"a truncated MailboxDelivery", []byte{0x81, 1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseCommands(tt.block); !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("got %v, want ErrInvalidCommand", err)
			}
		})
	}
	for _, ok := range [][]byte{nil, {0}, make([]byte, 82), append(bytes.Clone(sr), 0, 0)} {
		if _, err := ParseCommands(ok); err != nil {
			t.Errorf("%x: %v", ok, err)
		}
	}
}
