package sphinx

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzUnwrap feeds arbitrary packets to a node: it must never panic, and
// anything it accepts must carry the node's MAC.
func FuzzUnwrap(f *testing.F) {
	g, err := NewGeometry(64, 3, false)
	if err != nil {
		f.Fatal(err)
	}
	r := testRand(30)
	nodes := newTestNodes(f, r, 3)
	for hops := 1; hops <= 3; hops++ {
		pkt, err := NewPacket(r, g, forwardPath(nodes[:hops], &Recipient{ID: [32]byte{1}}, &MailboxDelivery{Lifetime: 60}), testPayload(g, 1))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(pkt)
	}
	surb, _, err := NewSURB(r, g, forwardPath(nodes, &SURBReply{ID: [16]byte{1}}, &MailboxDelivery{Lifetime: 60}))
	if err != nil {
		f.Fatal(err)
	}
	reply, _, err := NewPacketFromSURB(g, surb, testPayload(g, 2))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(reply)
	f.Add([]byte{})
	f.Add(make([]byte, g.PacketLength))
	u := NewUnwrapper(g, nodes[0].priv)
	var res Result
	f.Fuzz(func(t *testing.T, pkt []byte) {
		orig := bytes.Clone(pkt)
		err := u.Unwrap(pkt, &res)
		if err == nil {
			if len(orig) != g.PacketLength {
				t.Fatalf("accepted a %d-byte packet", len(orig))
			}
			return
		}
		for _, want := range []error{ErrInvalidPacket, ErrInvalidVersion, ErrInvalidMAC, ErrInvalidGroupElement, ErrInvalidCommand, ErrInvalidPayload} {
			if errors.Is(err, want) {
				return
			}
		}
		t.Fatalf("unexpected error %v", err)
	})
}

// FuzzCommands parses arbitrary command blocks: it must never panic, and a
// block it accepts re-encodes to itself (commands, then zero padding).
func FuzzCommands(f *testing.F) {
	seeds := [][]Command{
		{&NodeDelay{Delay: 0xdeadbabe}, &NextNodeHop{ID: [32]byte{1}, MAC: [32]byte{2}}},
		{&Recipient{ID: [32]byte{3}}, &SURBReply{ID: [16]byte{4}}},
		{&Recipient{ID: [32]byte{3}}, &MailboxDelivery{Mailbox: [16]byte{5}, Lifetime: 3600}},
	}
	for _, s := range seeds {
		block := make([]byte, 82)
		b := block[:0]
		for _, c := range s {
			b = c.AppendTo(b) // writes into block; the rest stays zero padding
		}
		f.Add(block)
	}
	f.Add([]byte{0x01})
	f.Add([]byte{0x00, 0x01})
	f.Fuzz(func(t *testing.T, block []byte) {
		c, err := ParseCommands(block)
		if err != nil {
			if !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		var enc []byte
		for _, cmd := range c.List {
			enc = cmd.AppendTo(enc)
		}
		if len(enc) > len(block) || !bytes.Equal(enc, block[:len(enc)]) || !bytes.Equal(block[len(enc):], make([]byte, len(block)-len(enc))) {
			t.Fatalf("block %x re-encodes to %x", block, enc)
		}
	})
}
