package pkigossip

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/sottonet/sotto/interfaces"
)

// ProtocolID is the request/response protocol members serve to each other
// (anti-entropy) and to clients (document fetch). One request per stream:
// op (1 byte) || epoch (8 bytes, big-endian); answers are in docs/SPEC.md.
const ProtocolID protocol.ID = "/sotto/pki/1.0.0"

const (
	opStateHash byte = 1 // answer: 32-byte hash of every descriptor held (zero: none)
	opState     byte = 2 // answer: u32 count || count × (u16 length || descriptor)
	opDocument  byte = 3 // answer: status (0 ok, 1 none) || u32 length || document
	opMessages  byte = 4 // answer: as opState, each descriptor in its gossip message (with its admission proof)

	streamTimeout = 10 * time.Second
	maxStateItems = 2 * interfaces.MaxDocumentNodes
)

// ErrProtocol: a peer answered with bytes that break the protocol.
var ErrProtocol = errors.New("pki-gossip: protocol violation")

func (m *Member) serveStream(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(streamTimeout))
	var req [9]byte
	if _, err := io.ReadFull(s, req[:]); err != nil {
		_ = s.Reset()
		return
	}
	e := binary.BigEndian.Uint64(req[1:])
	w := bufio.NewWriter(s)
	switch req[0] {
	case opStateHash:
		h := m.store.stateHash(e)
		w.Write(h[:])
	case opState, opMessages:
		items := m.store.raws(e)
		if req[0] == opMessages {
			items = m.store.messages(e)
		}
		items = m.withheld(s.Conn().RemotePeer(), e, items)
		w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(items))))
		for _, r := range items {
			w.Write(binary.BigEndian.AppendUint16(nil, uint16(len(r))))
			w.Write(r)
		}
	case opDocument:
		resp, err := m.Document(context.Background(), &interfaces.DocumentRequest{Epoch: e})
		var enc []byte
		if err == nil {
			enc, err = resp.Document.Encode()
		}
		if err != nil {
			w.WriteByte(1)
			break
		}
		w.WriteByte(0)
		w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(enc))))
		w.Write(enc)
	default:
		_ = s.Reset()
		return
	}
	if err := w.Flush(); err != nil {
		_ = s.Reset()
	}
}

func request(ctx context.Context, h host.Host, p peer.ID, op byte, e uint64) (network.Stream, error) {
	s, err := h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("pki-gossip: open stream to %s: %w", p, err)
	}
	deadline := time.Now().Add(streamTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = s.SetDeadline(deadline)
	req := binary.BigEndian.AppendUint64([]byte{op}, e)
	if _, err := s.Write(req); err != nil {
		s.Reset()
		return nil, fmt.Errorf("pki-gossip: request to %s: %w", p, err)
	}
	_ = s.CloseWrite()
	return s, nil
}

// readState decodes an opState or opMessages answer, whose items are at
// most maxItem bytes. It never trusts the peer's counts: lengths are
// bounded before anything is allocated.
func readState(r io.Reader, maxItem int) ([][]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, fmt.Errorf("%w: state count: %w", ErrProtocol, err)
	}
	count := binary.BigEndian.Uint32(n[:])
	if count > maxStateItems {
		return nil, fmt.Errorf("%w: %d descriptors announced", ErrProtocol, count)
	}
	out := make([][]byte, 0, min(count, 64))
	for range count {
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, fmt.Errorf("%w: descriptor length: %w", ErrProtocol, err)
		}
		size := int(binary.BigEndian.Uint16(l[:]))
		if size > maxItem {
			return nil, fmt.Errorf("%w: item of %d bytes", ErrProtocol, size)
		}
		b := make([]byte, size)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("%w: descriptor: %w", ErrProtocol, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// FetchDocument asks one member for its document of an epoch, as a client
// does. The answer is parsed and verified (every descriptor's signature)
// before it is returned; the caller still compares hashes across members,
// because one member's view proves nothing about the others'.
func FetchDocument(ctx context.Context, h host.Host, member peer.ID, e uint64) (*interfaces.Document, [32]byte, error) {
	s, err := request(ctx, h, member, opDocument, e)
	if err != nil {
		return nil, [32]byte{}, err
	}
	defer s.Close()
	var hdr [5]byte
	if _, err := io.ReadFull(s, hdr[:1]); err != nil {
		return nil, [32]byte{}, fmt.Errorf("%w: status: %w", ErrProtocol, err)
	}
	if hdr[0] == 1 {
		return nil, [32]byte{}, fmt.Errorf("pki-gossip: %s has no document for epoch %d: %w", member, e, interfaces.ErrNotFound)
	}
	if hdr[0] != 0 {
		return nil, [32]byte{}, fmt.Errorf("%w: status %d", ErrProtocol, hdr[0])
	}
	if _, err := io.ReadFull(s, hdr[1:]); err != nil {
		return nil, [32]byte{}, fmt.Errorf("%w: length: %w", ErrProtocol, err)
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > interfaces.MaxDocumentSize {
		return nil, [32]byte{}, fmt.Errorf("%w: document of %d bytes", ErrProtocol, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s, b); err != nil {
		return nil, [32]byte{}, fmt.Errorf("%w: document: %w", ErrProtocol, err)
	}
	doc, err := interfaces.ParseDocument(b)
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("pki-gossip: document from %s: %w", member, err)
	}
	if doc.Epoch != e {
		return nil, [32]byte{}, fmt.Errorf("%w: asked for epoch %d, got %d", ErrProtocol, e, doc.Epoch)
	}
	hash, _ := doc.Hash()
	return doc, hash, nil
}

// ErrViewsDiffer: members asked for one epoch's document answered with
// documents that differ (by hash).
var ErrViewsDiffer = errors.New("pki-gossip: members' documents differ")

// FetchAgreed asks each of members for its document of epoch e (as
// FetchDocument) and returns it only when every one answers with the same
// hash. Otherwise the error wraps ErrViewsDiffer and names each member's
// hash and node count, or wraps the first fetch error: a client that asks
// more than one member notices members whose views differ (one withholding
// a descriptor from some of the others, say) instead of trusting one view.
func FetchAgreed(ctx context.Context, h host.Host, members []peer.ID, e uint64) (*interfaces.Document, [32]byte, error) {
	if len(members) == 0 {
		return nil, [32]byte{}, fmt.Errorf("pki-gossip: fetch: %w: no members to ask", interfaces.ErrInvalidArgument)
	}
	var (
		first *interfaces.Document
		hash  [32]byte
		views []string
		same  = true
	)
	for i, p := range members {
		doc, hh, err := FetchDocument(ctx, h, p, e)
		if err != nil {
			return nil, [32]byte{}, err
		}
		views = append(views, fmt.Sprintf("%s: %x (%d nodes)", p, hh[:8], len(doc.Nodes)))
		if i == 0 {
			first, hash = doc, hh
		} else if hh != hash {
			same = false
		}
	}
	if !same {
		return nil, [32]byte{}, fmt.Errorf("%w for epoch %d: %s", ErrViewsDiffer, e, strings.Join(views, "; "))
	}
	return first, hash, nil
}

// syncLoop is anti-entropy: every SyncInterval (jittered) compare state
// hashes with one random topic peer for each live epoch, pull on mismatch.
func (m *Member) syncLoop(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTimer(jitter(m.cfg.SyncInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.redialBootstrap(ctx)
		peers := m.topic.ListPeers()
		if len(peers) == 0 {
			peers = m.host.Network().Peers()
		}
		if len(peers) > 0 {
			m.syncWith(ctx, peers[rand.N(len(peers))])
		}
		t.Reset(jitter(m.cfg.SyncInterval))
	}
}

// syncWith pulls from p every live epoch whose state differs from ours.
func (m *Member) syncWith(ctx context.Context, p peer.ID) {
	cur := m.clock.Now()
	for e := cur; e <= cur+m.cfg.Ahead; e++ {
		if err := m.syncEpoch(ctx, p, e); err != nil {
			m.log.Debug("anti-entropy round failed", "peer", p, "epoch", e, "err", err)
			return
		}
	}
}

func (m *Member) syncEpoch(ctx context.Context, p peer.ID, e uint64) error {
	theirs, err := m.stateHashOf(ctx, p, e)
	if err != nil {
		return err
	}
	if theirs == ([32]byte{}) || theirs == m.store.stateHash(e) {
		m.agree(p, e)
		return nil
	}
	s, err := request(ctx, m.host, p, opMessages, e)
	if err != nil {
		return err
	}
	defer s.Close()
	msgs, err := readState(bufio.NewReader(s), maxMessageLen)
	if err != nil {
		return err
	}
	src := m.sourceOf(p)
	var handed [][]byte
	for _, msg := range msgs {
		if _, raw, _, err := parseMessage(msg); err == nil {
			handed = append(handed, raw)
		}
	}
	slices.SortFunc(handed, bytes.Compare)
	for _, msg := range msgs {
		v, err := m.ingest(ctx, msg, src)
		if err != nil || v != verdictDuplicate {
			m.judge(v, err, p)
		}
		if err == nil && (v == verdictNew || v == verdictEquivocation) {
			// Pulled, not gossiped: pass it on, so that the members this
			// one is meshed with learn it now rather than at their next
			// anti-entropy round (gossip IDs are content hashes, so a
			// member that has it already drops it as a duplicate).
			if err := m.topic.Publish(ctx, msg); err != nil {
				m.log.Debug("re-gossip of a pulled descriptor failed", "err", err)
			}
		}
	}
	// The peer withheld part of the state it announced when what it handed
	// over does not hash to it (or it lied about its hash). A peer whose
	// answer is complete but whose state differs from ours is behind or
	// holds descriptors we refuse: it pulls from us, no disagreement.
	// A state that grew between the two requests is no disagreement: ask
	// for the hash again, and count only an answer that still falls short
	// of an unchanged announcement.
	if got := hashRaws(handed); got == theirs {
		m.agree(p, e)
	} else if again, err := m.stateHashOf(ctx, p, e); err == nil && again == theirs {
		m.disagree(p, e, theirs, got)
	}
	return nil
}

// stateHashOf asks p for its state hash of epoch e.
func (m *Member) stateHashOf(ctx context.Context, p peer.ID, e uint64) ([32]byte, error) {
	var h [32]byte
	s, err := request(ctx, m.host, p, opStateHash, e)
	if err != nil {
		return h, err
	}
	defer s.Close()
	if _, err := io.ReadFull(s, h[:]); err != nil {
		return h, fmt.Errorf("%w: hash: %w", ErrProtocol, err)
	}
	return h, nil
}

// disagree records that p's answer for epoch e did not hand over the state
// it announced (theirs; got is what it handed over), and logs it when it
// starts.
func (m *Member) disagree(p peer.ID, e uint64, theirs, got [32]byte) {
	m.disagreements.Add(1)
	m.differMu.Lock()
	defer m.differMu.Unlock()
	if m.differ == nil {
		m.differ = map[differKey][32]byte{}
	}
	k := differKey{p, e}
	if prev, ok := m.differ[k]; ok && prev == theirs {
		return
	}
	for old := range m.differ {
		if old.e+m.cfg.Keep < e {
			delete(m.differ, old)
		}
	}
	m.differ[k] = theirs
	m.log.Warn("PKI views differ: a peer announces descriptors it does not hand over",
		"peer", p, "epoch", e, "announced_state", fmt.Sprintf("%x", theirs[:8]), "handed_over", fmt.Sprintf("%x", got[:8]))
}

// agree ends a disagreement with p over epoch e, if one was logged.
func (m *Member) agree(p peer.ID, e uint64) {
	m.differMu.Lock()
	defer m.differMu.Unlock()
	k := differKey{p, e}
	if _, ok := m.differ[k]; ok {
		delete(m.differ, k)
		m.log.Info("PKI views agree again", "peer", p, "epoch", e)
	}
}

// withheld drops from an anti-entropy answer to p the member's own
// descriptors while the tests' withholding fault is on for p. items are
// raws or gossip messages of epoch e, in the order of raws.
func (m *Member) withheld(p peer.ID, e uint64, items [][]byte) [][]byte {
	w := m.withhold.Load()
	if w == nil || !(*w)(p) {
		return items
	}
	raws := m.store.raws(e)
	if len(raws) != len(items) {
		return nil // the state moved between the two reads: answer nothing this round
	}
	m.ownMu.Lock()
	defer m.ownMu.Unlock()
	out := items[:0:0]
	for i, r := range raws {
		if !m.own[string(r)] {
			out = append(out, items[i])
		}
	}
	return out
}

// pullOnConnect syncs with every peer as soon as a connection to it is
// up, both ways (each side pulls): a member that joins learns the whole
// view at once and everyone learns its descriptor, instead of waiting for
// gossip meshes to form or an anti-entropy round to pick it.
type pullOnConnect struct {
	m   *Member
	ctx context.Context
	sem chan struct{}
}

func (n *pullOnConnect) Connected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	if n.ctx.Err() != nil {
		return
	}
	select {
	case n.sem <- struct{}{}:
	default:
		return // many connections at once: the sync loop catches up
	}
	n.m.wg.Add(1)
	go func() {
		defer n.m.wg.Done()
		defer func() { <-n.sem }()
		// Let the peer register its protocol handlers (identify).
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		n.m.syncWith(n.ctx, p)
	}()
}

func (*pullOnConnect) Disconnected(network.Network, network.Conn) {}
func (*pullOnConnect) Listen(network.Network, ma.Multiaddr)       {}
func (*pullOnConnect) ListenClose(network.Network, ma.Multiaddr)  {}
