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

// Buffer is one packet's memory, lent to Inbound by the pipeline (whose own
// packet type implements it, so that nothing is allocated per frame).
type Buffer interface {
	// Bytes is the packet: exactly the network's packet length.
	Bytes() []byte
}

// Inbound receives packets on MixProtocol streams. Set its fields, then
// install Handle with host.SetStreamHandler(MixProtocol, in.Handle).
type Inbound struct {
	// Admitted are the peers whose streams are read; others are reset.
	Admitted *PeerSet
	// PacketLength is the network's Sphinx packet size.
	PacketLength int
	// Buffer returns a buffer for the next packet; its Bytes must be
	// PacketLength long.
	Buffer func() Buffer
	// Discard, if set, takes back a buffer that was not delivered because
	// the stream ended or broke while reading into it.
	Discard func(Buffer)
	// Deliver takes each packet read; it owns the buffer from then on. It
	// must not block for long: the stream is not read meanwhile, which is
	// the back-pressure a slow pipeline puts on its senders.
	Deliver func(from peer.ID, packet Buffer)
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
		if err := r.ReadFrame(buf.Bytes()); err != nil {
			if in.Discard != nil {
				in.Discard(buf)
			}
			if err == io.EOF {
				return nil
			}
			return err
		}
		// Admission is re-checked per frame: a peer that dropped out of
		// the documents loses its open streams too.
		if !in.Admitted.Contains(from) {
			if in.Discard != nil {
				in.Discard(buf)
			}
			return fmt.Errorf("%w (any more): %s", ErrNotAdmitted, from)
		}
		in.Deliver(from, buf)
	}
}
