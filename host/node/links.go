package node

import (
	"bufio"
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sottonet/sotto/host/link"
)

// Outgoing packet kinds, for sotto_packets_out_total.
const (
	outForward = iota
	outAck
	outLoop
)

// linkQueue bounds the packets waiting for one next hop.
const linkQueue = 1024

// linkBuffer is the size of a link's write buffer.
const linkBuffer = 64 << 10

// links are the node's outbound mix streams, one per next hop, each with a
// bounded queue and its own goroutine, so a slow or dead peer delays only
// the packets for it and the scheduler never waits on I/O.
type links struct {
	n      *Node
	mu     sync.RWMutex
	m      map[peer.ID]*outLink
	closed bool
	wg     sync.WaitGroup
}

type outLink struct {
	peer   peer.ID
	ch     chan *packet
	ctx    context.Context
	cancel context.CancelFunc
}

func newLinks(n *Node) *links { return &links{n: n, m: map[peer.ID]*outLink{}} }

// send queues p for h without blocking. A full queue drops p (counted)
// and send reports false.
func (l *links) send(h *hop, p *packet) bool {
	l.mu.RLock()
	ol := l.m[h.peer]
	if ol != nil {
		select {
		case ol.ch <- p:
			l.mu.RUnlock()
			return true
		default:
			l.mu.RUnlock()
			l.n.drop(p, dropLinkFull)
			return false
		}
	}
	l.mu.RUnlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.n.drop(p, dropShutdown)
		return false
	}
	if ol = l.m[h.peer]; ol == nil {
		ctx, cancel := context.WithCancel(context.Background())
		ol = &outLink{peer: h.peer, ch: make(chan *packet, linkQueue), ctx: ctx, cancel: cancel}
		l.m[h.peer] = ol
		l.wg.Go(func() { l.run(ol) })
	}
	ok := true
	select {
	case ol.ch <- p:
	default:
		l.n.drop(p, dropLinkFull)
		ok = false
	}
	l.mu.Unlock()
	return ok
}

// prune closes the links to peers that are no longer in any document.
func (l *links) prune(keep map[peer.ID]struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, ol := range l.m {
		if _, ok := keep[id]; !ok {
			delete(l.m, id)
			close(ol.ch)
		}
	}
}

// close stops accepting packets, lets the links write what they hold for at
// most timeout, then cuts them.
func (l *links) close(timeout time.Duration) {
	l.mu.Lock()
	l.closed = true
	for id, ol := range l.m {
		delete(l.m, id)
		close(ol.ch)
		time.AfterFunc(timeout, ol.cancel)
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// run writes one link's packets. A stream that cannot be opened or breaks
// costs the packets at hand (counted); the next attempt waits a backoff.
func (l *links) run(ol *outLink) {
	n := l.n
	var (
		s        network.Stream
		bw       *bufio.Writer
		fw       *link.Writer
		backoff  = 100 * time.Millisecond
		retryAt  time.Time
		deadline time.Time // the stream's write deadline, refreshed at most once a second
		// Frames written into bw but not yet flushed, by kind: they count as
		// sent only once a flush succeeds, as lost if the stream breaks.
		pending [3]int
		// When the forwarded frames in bw were due (arrival + NodeDelay),
		// for sotto_added_delay_seconds once they are flushed.
		// bw flushes by itself when a frame does not fit, so it never
		// holds more than maxDue of them unflushed.
		maxDue = max(1, linkBuffer/n.geo.PacketLength)
		due    = make([]time.Time, 0, maxDue)
	)
	observeDue := func() {
		if len(due) == 0 {
			return
		}
		now := time.Now()
		for _, d := range due {
			n.m.added.Observe(now.Sub(d).Seconds())
		}
		due = due[:0]
	}
	settle := func(ok bool) {
		if ok {
			observeDue()
		}
		due = due[:0]
		for k, c := range pending {
			if c == 0 {
				continue
			}
			switch {
			case !ok:
				n.m.drop[dropLink].Add(float64(c))
			case k == outAck:
				n.m.outAck.Add(float64(c))
			case k == outLoop:
				n.m.outLoop.Add(float64(c))
			default:
				n.m.outForward.Add(float64(c))
			}
			pending[k] = 0
		}
	}
	defer func() {
		if s != nil {
			settle(bw.Flush() == nil)
			_ = s.Close()
		}
		settle(false)
		ol.cancel()
	}()
	fail := func(err error) {
		n.logLimited("link:"+ol.peer.String(), "link to next hop failed", "peer", ol.peer, "err", err)
		if s != nil {
			_ = s.Reset()
			s = nil
		}
		settle(false)
		retryAt = time.Now().Add(backoff)
		backoff = min(2*backoff, 10*time.Second)
	}
	open := func() error {
		ctx, cancel := context.WithTimeout(ol.ctx, 10*time.Second)
		ns, err := n.host.NewStream(ctx, ol.peer, link.MixProtocol)
		cancel()
		if err != nil {
			return err
		}
		s, deadline = ns, time.Time{}
		if bw == nil {
			bw = bufio.NewWriterSize(s, linkBuffer)
		} else {
			bw.Reset(s)
		}
		fw, _ = link.NewWriter(bw, n.geo.PacketLength)
		return nil
	}
	write := func(p *packet) error {
		if now := time.Now(); now.After(deadline.Add(-9 * time.Second)) {
			deadline = now.Add(10 * time.Second)
			_ = s.SetWriteDeadline(deadline)
		}
		if err := fw.WriteFrame(p.buf); err != nil {
			return err
		}
		pending[p.outKind]++
		if len(due) == maxDue {
			// This frame did not fit: bw flushed the others first.
			observeDue()
		}
		if p.outKind == outForward {
			due = append(due, p.recv.Add(p.delay))
		}
		if len(ol.ch) == 0 {
			if err := bw.Flush(); err != nil {
				pending[p.outKind]-- // the caller accounts for p itself
				return err
			}
			settle(true)
		}
		return nil
	}
	for p := range ol.ch {
		if ol.ctx.Err() != nil {
			n.drop(p, dropShutdown)
			continue
		}
		if s == nil {
			if time.Now().Before(retryAt) {
				n.drop(p, dropLink)
				continue
			}
			if err := open(); err != nil {
				fail(err)
				n.drop(p, dropLink)
				continue
			}
		}
		if err := write(p); err != nil {
			// A stream that worked may have died with its peer (a restart):
			// try once more on a fresh stream before giving the packet up.
			// The frames buffered before it are lost with the old stream.
			_ = s.Reset()
			s = nil
			settle(false)
			if err = open(); err == nil {
				err = write(p)
			}
			if err != nil {
				fail(err)
				n.drop(p, dropLink)
				continue
			}
		}
		backoff = 100 * time.Millisecond
		n.putPacket(p) // its bytes are in bw; settle counts it

	}
}
