package link

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrNotAdmitted: a peer that is not in the current PKI document opened a
// mix stream.
var ErrNotAdmitted = errors.New("link: peer not admitted to the mix protocol")

// PeerSet is the set of peers allowed to send mix traffic: the nodes of the
// PKI documents a node currently routes with. Replace swaps it at once, so
// readers never see half a set. The zero value admits no one.
type PeerSet struct {
	p atomic.Pointer[map[peer.ID]struct{}]
}

// Replace makes ids the admitted peers.
func (ps *PeerSet) Replace(ids []peer.ID) {
	m := make(map[peer.ID]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	ps.p.Store(&m)
}

// Contains reports whether id is admitted.
func (ps *PeerSet) Contains(id peer.ID) bool {
	m := ps.p.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[id]
	return ok
}

// Inbound receives packets on MixProtocol streams. Set its fields, then
// install Handle with host.SetStreamHandler(MixProtocol, in.Handle).
type Inbound struct {
	// Admitted are the peers whose streams are read; others are reset.
	Admitted *PeerSet
	// PacketLength is the network's Sphinx packet size.
	PacketLength int
	// Buffer returns a buffer of PacketLength bytes for the next packet.
	Buffer func() []byte
	// Deliver takes each packet read; it owns the buffer from then on. It
	// must not block for long: the stream is not read meanwhile, which is
	// the back-pressure a slow pipeline puts on its senders.
	Deliver func(from peer.ID, packet []byte)
	// Refused, if set, learns why a stream was cut (ErrNotAdmitted,
	// ErrFrameSize, ErrFrameVersion, or the stream's read error), to count
	// and log it.
	Refused func(from peer.ID, err error)
}

// Handle reads one stream to its end. It resets the stream on a peer that
// is not admitted and on the first bad frame.
func (in *Inbound) Handle(s network.Stream) {
	from := s.Conn().RemotePeer()
	if err := in.serve(from, s); err != nil {
		_ = s.Reset()
		if in.Refused != nil {
			in.Refused(from, err)
		}
		return
	}
	_ = s.Close()
}

func (in *Inbound) serve(from peer.ID, s io.Reader) error {
	if !in.Admitted.Contains(from) {
		return fmt.Errorf("%w: %s", ErrNotAdmitted, from)
	}
	r, err := NewReader(s, in.PacketLength)
	if err != nil {
		return err
	}
	for {
		buf := in.Buffer()
		if err := r.ReadFrame(buf); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		in.Deliver(from, buf)
	}
}
