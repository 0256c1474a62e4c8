package node

import (
	"github.com/libp2p/go-libp2p/core/peer"
	"time"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/sphinx"
)

// packet is one packet in the pipeline, from the frame it was read into to
// the link that writes it on or the mailbox that stores it. Packets are
// pooled: the pipeline allocates nothing per packet in steady state.
type packet struct {
	buf     []byte // PacketLength bytes, unwrapped in place
	recv    time.Time
	delay   time.Duration
	epoch   epoch.Epoch // of the key that unwrapped it
	tag     [sphinx.ReplayTagLength]byte
	client  bool    // came in through the client protocol
	from    peer.ID // the node that sent it, when it came over a mix link
	outKind uint8   // what it is when it leaves: outForward, outAck, outLoop

	next   bool
	nextID [sphinx.NodeIDLength]byte

	// Final hop only.
	payload   []byte // aliases buf
	recipient bool
	rcpt      [sphinx.RecipientIDLength]byte
	surbReply bool
	surbID    [sphinx.SURBIDLength]byte
	mailbox   bool
	mbox      [sphinx.MailboxIDLength]byte
	lifetime  uint32
}

// Bytes implements link.Buffer.
func (p *packet) Bytes() []byte { return p.buf }

func (n *Node) getPacket() *packet {
	if v := n.pool.Get(); v != nil {
		return v.(*packet)
	}
	return &packet{buf: make([]byte, n.geo.PacketLength)}
}

func (n *Node) putPacket(p *packet) {
	buf := p.buf
	*p = packet{buf: buf}
	n.pool.Put(p)
}

// drop counts a dropped packet and recycles it.
func (n *Node) drop(p *packet, reason string) {
	n.m.drop[reason].Inc()
	n.putPacket(p)
}
