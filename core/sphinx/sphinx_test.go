package sphinx

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"github.com/sottonet/sotto/core/sphinx/internal/aesctr"
)

func testPayload(g *Geometry, seed byte) []byte {
	p := make([]byte, g.ForwardPayloadLength)
	for i := range p {
		p[i] = byte(i) ^ seed
	}
	return p
}

// route unwraps pkt at every node in turn and returns the final Result.
func route(t testing.TB, g *Geometry, nodes []testNode, pkt []byte) *Result {
	t.Helper()
	res := new(Result)
	for i, nd := range nodes {
		if err := NewUnwrapper(g, nd.priv).Unwrap(pkt, res); err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		if i < len(nodes)-1 {
			if res.Commands.NextHop == nil || res.Commands.NextHop.ID != nodes[i+1].id {
				t.Fatalf("hop %d: wrong next hop", i)
			}
			if d, ok := res.Commands.List[0].(*NodeDelay); !ok || d.Delay != uint32(100*(i+1)) {
				t.Fatalf("hop %d: delay command %v", i, res.Commands.List[0])
			}
		}
	}
	return res
}

func TestForwardRoundTrip(t *testing.T) {
	g := DefaultGeometry()
	r := testRand(1)
	for hops := 1; hops <= g.NrHops; hops++ {
		t.Run(fmt.Sprintf("%d hops", hops), func(t *testing.T) {
			nodes := newTestNodes(t, r, hops)
			mb := &MailboxDelivery{Mailbox: [16]byte{1, 2, 3}, Lifetime: 86400}
			rc := &Recipient{ID: [32]byte{9}}
			payload := testPayload(g, byte(hops))
			pkt, err := NewPacket(r, g, forwardPath(nodes, rc, mb), payload)
			if err != nil {
				t.Fatal(err)
			}
			if len(pkt) != g.PacketLength {
				t.Fatalf("packet is %d bytes, want %d", len(pkt), g.PacketLength)
			}
			res := route(t, g, nodes, pkt)
			if !bytes.Equal(res.Payload, payload) {
				t.Fatal("payload differs")
			}
			if len(res.Commands.List) != 2 || *res.Commands.List[0].(*Recipient) != *rc || *res.Commands.List[1].(*MailboxDelivery) != *mb {
				t.Fatalf("final commands %v", res.Commands.List)
			}
		})
	}
}

func TestSURBRoundTrip(t *testing.T) {
	g := DefaultGeometry()
	r := testRand(2)
	for hops := 1; hops <= g.NrHops; hops++ {
		t.Run(fmt.Sprintf("%d hops", hops), func(t *testing.T) {
			nodes := newTestNodes(t, r, hops)
			sr := &SURBReply{ID: [16]byte{7, 7}}
			mb := &MailboxDelivery{Mailbox: [16]byte{4}, Lifetime: 3600}
			surb, keys, err := NewSURB(r, g, forwardPath(nodes, sr, mb))
			if err != nil {
				t.Fatal(err)
			}
			if len(surb) != g.SURBLength || len(keys) != SURBKeysEntryLength*(hops+1) {
				t.Fatalf("SURB %d bytes, keys %d bytes", len(surb), len(keys))
			}
			payload := testPayload(g, 0x5a)
			pkt, first, err := NewPacketFromSURB(g, surb, payload)
			if err != nil {
				t.Fatal(err)
			}
			if first != nodes[0].id {
				t.Fatal("wrong first hop")
			}
			res := route(t, g, nodes, pkt)
			if res.Commands.SURBReply == nil || res.Commands.SURBReply.ID != sr.ID {
				t.Fatal("no SURBReply at the final hop")
			}
			got, err := DecryptSURBPayload(res.Payload, keys)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatal("reply payload differs")
			}
		})
	}
}

func TestTampering(t *testing.T) {
	g := DefaultGeometry()
	r := testRand(3)
	nodes := newTestNodes(t, r, 3)
	path := forwardPath(nodes, &Recipient{ID: [32]byte{1}})
	pkt, err := NewPacket(r, g, path, testPayload(g, 1))
	if err != nil {
		t.Fatal(err)
	}
	// A low-order α: the order-8 point with u = 0x...b800 (RFC 7748 list).
	lowOrder := []byte{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00}
	tests := []struct {
		name   string
		change func(p []byte) []byte
		want   error
	}{
		{"a flipped routing-info bit fails the MAC", func(p []byte) []byte { p[100] ^= 1; return p }, ErrInvalidMAC},
		{"a flipped MAC bit fails the MAC", func(p []byte) []byte { p[g.HeaderLength-1] ^= 0x80; return p }, ErrInvalidMAC},
		{"a flipped α bit fails the MAC", func(p []byte) []byte { p[5] ^= 4; return p }, ErrInvalidMAC},
		{"a wrong version is refused", func(p []byte) []byte { p[1] = 1; return p }, ErrInvalidVersion},
		{"a short packet is refused", func(p []byte) []byte { return p[:len(p)-1] }, ErrInvalidPacket},
		{"a long packet is refused", func(p []byte) []byte { return append(p, 0) }, ErrInvalidPacket},
		{"an empty packet is refused", func(p []byte) []byte { return nil }, ErrInvalidPacket},
		{"a low-order α is refused", func(p []byte) []byte { copy(p[2:], lowOrder); return p }, ErrInvalidGroupElement},
		{"an all-zero α is refused", func(p []byte) []byte { clear(p[2:34]); return p }, ErrInvalidGroupElement},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.change(bytes.Clone(pkt))
			var res Result
			err := NewUnwrapper(g, nodes[0].priv).Unwrap(p, &res)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("a flipped payload bit passes the mixes and fails at the final hop", func(t *testing.T) {
		p := bytes.Clone(pkt)
		p[g.HeaderLength+500] ^= 1
		var res Result
		for i, nd := range nodes {
			err := NewUnwrapper(g, nd.priv).Unwrap(p, &res)
			if i < len(nodes)-1 && err != nil {
				t.Fatalf("hop %d: %v", i, err)
			}
			if i == len(nodes)-1 && !errors.Is(err, ErrInvalidPayload) {
				t.Fatalf("final hop: got %v, want ErrInvalidPayload", err)
			}
		}
	})
	t.Run("the one-shot Unwrap gives the same packet as an Unwrapper", func(t *testing.T) {
		a, b := bytes.Clone(pkt), bytes.Clone(pkt)
		res, err := Unwrap(g, nodes[0].priv, a)
		if err != nil {
			t.Fatal(err)
		}
		var res2 Result
		if err := NewUnwrapper(g, nodes[0].priv).Unwrap(b, &res2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) || res.ReplayTag != res2.ReplayTag || *res.Commands.NextHop != *res2.Commands.NextHop {
			t.Fatal("results differ")
		}
	})
	t.Run("the wrong node key fails the MAC", func(t *testing.T) {
		var res Result
		if err := NewUnwrapper(g, nodes[1].priv).Unwrap(bytes.Clone(pkt), &res); !errors.Is(err, ErrInvalidMAC) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestNewPacketRefusesBadPaths(t *testing.T) {
	g := DefaultGeometry()
	r := testRand(4)
	nodes := newTestNodes(t, r, 6)
	big := &Recipient{}
	tests := []struct {
		name    string
		path    []PathHop
		payload []byte
	}{
		{"an empty path", nil, testPayload(g, 0)},
		{"more hops than the geometry", forwardPath(nodes), testPayload(g, 0)},
		{"a short payload", forwardPath(nodes[:2]), make([]byte, 10)},
		{"a NextNodeHop among the commands", []PathHop{{PublicKey: nodes[0].priv.PublicKey(), Commands: []Command{&NextNodeHop{}}}}, testPayload(g, 0)},
		{"final commands too long", []PathHop{{PublicKey: nodes[0].priv.PublicKey(), Commands: []Command{big, big, big}}}, testPayload(g, 0)},
		{"a mix hop with commands leaving no room for the next hop", append([]PathHop{{PublicKey: nodes[0].priv.PublicKey(), Commands: []Command{big}}}, forwardPath(nodes[1:2])...), testPayload(g, 0)},
		{"a missing public key", []PathHop{{}}, testPayload(g, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewPacket(r, g, tt.path, tt.payload); !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("got %v, want ErrInvalidPath", err)
			}
		})
	}
	if _, _, err := NewSURB(r, g, forwardPath(nodes[:2], &Recipient{})); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("SURB without SURBReply: got %v", err)
	}
}

func TestUnwrapAllocations(t *testing.T) {
	g := DefaultGeometry()
	r := testRand(8)
	nodes := newTestNodes(t, r, 2)
	pkt, err := NewPacket(r, g, forwardPath(nodes, &Recipient{}), testPayload(g, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !aesctr.AllocationFree() {
		t.Fatal("the header stream allocates on this platform: every path (AES-NI or bitsliced) must not")
	}
	u := NewUnwrapper(g, nodes[0].priv)
	var res Result
	work := make([]byte, len(pkt))
	n := testing.AllocsPerRun(20, func() {
		copy(work, pkt)
		if err := u.Unwrap(work, &res); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("Unwrap allocates %v times per packet, want 0", n)
	}
}

func TestSURBMisuse(t *testing.T) {
	g := DefaultGeometry()
	r := testRand(10)
	nodes := newTestNodes(t, r, 2)
	surb, keys, err := NewSURB(r, g, forwardPath(nodes, &SURBReply{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewPacketFromSURB(g, surb[:len(surb)-1], testPayload(g, 0)); !errors.Is(err, ErrInvalidPacket) {
		t.Errorf("short SURB: got %v", err)
	}
	if _, _, err := NewPacketFromSURB(g, surb, []byte("short")); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("short payload: got %v", err)
	}
	body := make([]byte, 100)
	if _, err := DecryptSURBPayload(body, keys[:65]); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("bad key length: got %v", err)
	}
	if _, err := DecryptSURBPayload(body[:31], keys); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("short body: got %v", err)
	}
	pkt, _, err := NewPacketFromSURB(g, surb, testPayload(g, 0))
	if err != nil {
		t.Fatal(err)
	}
	res := route(t, g, nodes, pkt)
	other := bytes.Clone(keys)
	other[0] ^= 1
	if _, err := DecryptSURBPayload(bytes.Clone(res.Payload), other); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("wrong keys: got %v", err)
	}
}

func TestUnwrapperDestroyForgetsTheKey(t *testing.T) {
	g := DefaultGeometry()
	key, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := NewPacket(rand.Reader, g, []PathHop{{PublicKey: key.PublicKey(), Commands: []Command{&Recipient{}}}}, make([]byte, g.ForwardPayloadLength))
	if err != nil {
		t.Fatal(err)
	}
	u := NewUnwrapper(g, key)
	u.Destroy()
	if u.key != (PrivateKey{}) {
		t.Fatal("key still held after Destroy")
	}
	var res Result
	if err := u.Unwrap(pkt, &res); err == nil {
		t.Fatal("a destroyed unwrapper still unwraps")
	}
}
