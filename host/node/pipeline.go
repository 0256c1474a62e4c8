package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/mix"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/host/link"
	"github.com/sottonet/sotto/interfaces"
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
	client  bool  // came in through the client protocol
	outKind uint8 // what it is when it leaves: outForward, outAck, outLoop

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

// keySet is the Sphinx keys a node unwraps with, in the order they are
// tried: the current epoch's first, then the others still valid (the
// previous epoch's during its grace period, the next epoch's for senders
// whose clock runs ahead). gen changes whenever the set does.
type keySet struct {
	gen    uint64
	epochs []epoch.Epoch
	keys   []*sphinx.PrivateKey
}

// startPipeline sizes the pipeline for the geometry of the first document.
func (n *Node) startPipeline(rt *routeTable) error {
	n.geo = rt.geo
	qc := n.cfg.Mixing.QueueCapacity
	n.in = make(chan *packet, min(qc, 4096))
	n.replay = make(chan *packet, min(qc, 4096))
	sched, err := mix.NewScheduler(qc, n.release)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.sched = sched
	n.schedPub.Store(sched)
	if n.role == interfaces.RoleProvider {
		n.deliver = make(chan *packet, min(qc, 4096))
	}
	n.loops = newLoops(n)
	return nil
}

// backPressure is how long a mix stream's reader waits for room in the
// input queue before it drops the packet: short bursts slow the sender down
// (its stream is not read meanwhile), sustained overload drops and counts.
const backPressure = 20 * time.Millisecond

// deliverFromPeer takes a packet read from a mix stream.
func (n *Node) deliverFromPeer(_ peer.ID, b link.Buffer) {
	p := b.(*packet)
	n.m.inPeer.Inc()
	p.recv = time.Now()
	if n.enqueue(p) {
		return
	}
	t := time.NewTimer(backPressure) // only under overload
	defer t.Stop()
	n.inMu.RLock()
	defer n.inMu.RUnlock()
	if !n.inClose {
		select {
		case n.in <- p:
			return
		case <-t.C:
		}
	}
	if n.inClose {
		n.drop(p, dropShutdown)
		return
	}
	n.logLimited("overload", "input queue full; packet dropped")
	n.drop(p, dropOverload)
}

// enqueue hands p to the unwrap workers without blocking.
func (n *Node) enqueue(p *packet) bool {
	n.inMu.RLock()
	defer n.inMu.RUnlock()
	if n.inClose {
		return false
	}
	select {
	case n.in <- p:
		return true
	default:
		return false
	}
}

// Inject takes a packet from a client of this provider: the provider is its
// first hop. It does not block; a full pipeline gives clientproto.ErrBusy.
func (n *Node) Inject(pkt []byte) error {
	if n.geo == nil {
		return fmt.Errorf("%w: node not routing yet", clientproto.ErrBusy)
	}
	if len(pkt) != n.geo.PacketLength {
		return fmt.Errorf("%w: packet of %d bytes, want %d", sphinx.ErrInvalidPacket, len(pkt), n.geo.PacketLength)
	}
	n.m.inClient.Inc()
	p := n.getPacket()
	copy(p.buf, pkt)
	p.recv, p.client = time.Now(), true
	if !n.enqueue(p) {
		n.drop(p, dropOverload)
		return fmt.Errorf("%w: input queue full", clientproto.ErrBusy)
	}
	return nil
}

func (n *Node) refused(from peer.ID, err error) {
	reason := "read"
	switch {
	case errors.Is(err, link.ErrNotAdmitted):
		reason = "not_admitted"
	case errors.Is(err, link.ErrFrameSize), errors.Is(err, link.ErrFrameVersion):
		reason = "frame"
	}
	n.m.refused.WithLabelValues(reason).Inc()
	if reason == "read" && !errors.Is(err, io.ErrUnexpectedEOF) {
		// A peer closing its connection (a restart, a shutdown) is normal;
		// a stream that stops inside a frame is not.
		n.log.Debug("mix stream ended", "peer", from, "err", err)
		return
	}
	n.logLimited("stream refused:"+reason, "mix stream cut", "peer", from, "reason", reason, "err", err)
}

// startWorkers starts the unwrap workers; the WaitGroup is done once the
// input queue is closed and drained.
func (n *Node) startWorkers() *sync.WaitGroup {
	var wg sync.WaitGroup
	for range max(1, n.cfg.Mixing.UnwrapWorkers) {
		wg.Go(n.unwrapLoop)
	}
	return &wg
}

// unwrapLoop is one unwrap worker. It keeps one Unwrapper per key, rebuilt
// when the key set changes, and one Result, so an unwrap allocates nothing.
func (n *Node) unwrapLoop() {
	var (
		gen uint64
		us  []*sphinx.Unwrapper
		eps []epoch.Epoch
		res sphinx.Result
	)
	for p := range n.in {
		if ks := n.keys.Load(); ks.gen != gen || us == nil {
			for _, u := range us {
				u.Destroy() // no copy of a retired key outlives the set
			}
			gen, eps, us = ks.gen, ks.epochs, us[:0]
			for _, k := range ks.keys {
				us = append(us, sphinx.NewUnwrapper(n.geo, k))
			}
		}
		t0 := time.Now()
		err := sphinx.ErrInvalidMAC
		for i, u := range us {
			if err = u.Unwrap(p.buf, &res); err != sphinx.ErrInvalidMAC {
				p.epoch = eps[i]
				break
			}
		}
		n.m.unwrap.Observe(time.Since(t0).Seconds())
		if err != nil {
			reason := dropInvalid
			if errors.Is(err, sphinx.ErrInvalidPayload) {
				reason = dropPayload
			}
			n.logLimited("unwrap:"+reason, "packet refused", "reason", reason, "client", p.client, "err", err)
			n.drop(p, reason)
			continue
		}
		p.tag = res.ReplayTag
		if !n.readCommands(p, &res, time.Duration(n.maxDelay.Load())) {
			continue
		}
		n.replay <- p
	}
	for _, u := range us {
		u.Destroy()
	}
}

// readCommands copies what the rest of the pipeline needs out of res. It
// drops p and returns false when the commands ask for what this node will
// not do.
func (n *Node) readCommands(p *packet, res *sphinx.Result, maxDelay time.Duration) bool {
	for _, c := range res.Commands.List {
		switch c := c.(type) {
		case *sphinx.NodeDelay:
			p.delay = time.Duration(c.Delay) * time.Millisecond
		case *sphinx.Recipient:
			p.recipient, p.rcpt = true, c.ID
		case *sphinx.MailboxDelivery:
			p.mailbox, p.mbox, p.lifetime = true, c.Mailbox, c.Lifetime
		}
	}
	if nh := res.Commands.NextHop; nh != nil {
		p.next, p.nextID = true, nh.ID
	} else {
		p.payload = res.Payload
		if sr := res.Commands.SURBReply; sr != nil {
			p.surbReply, p.surbID = true, sr.ID
		}
	}
	if maxDelay > 0 && p.delay > maxDelay {
		n.logLimited("delay", "packet refused: delay over mixing.max_delay", "delay", p.delay, "max", maxDelay)
		n.drop(p, dropDelay)
		return false
	}
	return true
}

// hotSetCap bounds each epoch's in-memory replay set (about 50 bytes an
// entry). Past it, tags are still checked and recorded in storage, which
// stays the authority; the in-memory set only spares storage the replays it
// already knows.
const hotSetCap = 1 << 18

// maxReplayBatch bounds one InsertReplayTags call.
const maxReplayBatch = 512

// replayCommits is how many group commits of replay tags may be in flight
// at once. Commits run on their own goroutine(s); the replay loop takes the
// next batch once a commit is free, so the packets that arrived during a
// commit all go into the next one. One is best on the node benchmark
// (docs/BENCHMARKS.md, "Node"): with 2 or 4, Badger queues the commits
// behind each other's fsync, each takes longer and the added delay grows;
// one committer goroutine beside the replay loop beat committing on the
// loop itself (throughput +25%, added delay p99 about a third).
const replayCommits = 1

// commitJob is one group commit: tags of one epoch and their packets. The
// replay loop owns a job until it hands it to a committer, which gives it
// back when the commit is done; jobs are reused, so a commit allocates
// nothing in the node.
type commitJob struct {
	epoch epoch.Epoch
	tags  []interfaces.ReplayTag
	group []*packet
}

// replayLoop is the replay check. It is one goroutine, so the in-memory sets
// need no lock, and each round it takes every packet waiting (up to
// maxReplayBatch) and hands its tags, grouped by epoch, to a committer: the
// tags go to storage in one durable commit (group commit) and only then are
// the packets released to the scheduler. A packet whose tag could not be
// recorded is dropped, never released unrecorded. replayLoop returns when
// n.replay is closed and every commit it started is done.
func (n *Node) replayLoop() {
	free := make(chan *commitJob, replayCommits)
	jobs := make(chan *commitJob, replayCommits)
	for range replayCommits {
		free <- &commitJob{
			tags:  make([]interfaces.ReplayTag, 0, maxReplayBatch),
			group: make([]*packet, 0, maxReplayBatch),
		}
	}
	var committers sync.WaitGroup
	for range replayCommits {
		committers.Go(func() {
			for j := range jobs {
				n.commitTags(j.epoch, j.tags, j.group)
				clear(j.group) // the packets are the scheduler's now
				free <- j
			}
		})
	}
	defer committers.Wait()
	defer close(jobs)

	hot := map[epoch.Epoch]map[[32]byte]struct{}{}
	batch := make([]*packet, 0, maxReplayBatch)
	for p := range n.replay {
		// Wait for a free commit first: packets that arrive meanwhile join
		// this batch instead of waiting behind it.
		j := <-free
		batch = append(batch[:0], p)
	fill:
		for len(batch) < maxReplayBatch {
			select {
			case q, ok := <-n.replay:
				if !ok {
					break fill
				}
				batch = append(batch, q)
			default:
				break fill
			}
		}
		// Group by epoch (almost always one), checking the hot sets.
		for len(batch) > 0 {
			if j == nil {
				j = <-free
			}
			e := batch[0].epoch
			set := hot[e]
			if set == nil {
				set = make(map[[32]byte]struct{}, 1024)
				hot[e] = set
				n.pruneHot(hot)
			}
			j.epoch, j.tags, j.group = e, j.tags[:0], j.group[:0]
			rest := batch[:0]
			for _, q := range batch {
				if q.epoch != e {
					rest = append(rest, q)
					continue
				}
				if _, seen := set[q.tag]; seen {
					n.m.replayHits.Inc()
					n.logLimited("replay", "replayed packet dropped", "epoch", e)
					n.drop(q, dropReplay)
					continue
				}
				if len(set) < hotSetCap {
					set[q.tag] = struct{}{}
				}
				j.tags = append(j.tags, q.tag)
				j.group = append(j.group, q)
			}
			batch = rest
			if len(j.group) > 0 {
				jobs <- j
				j = nil
			}
		}
		if j != nil {
			free <- j
		}
	}
}

// pruneHot forgets the in-memory sets of epochs whose keys are gone.
func (n *Node) pruneHot(hot map[epoch.Epoch]map[[32]byte]struct{}) {
	now := time.Now()
	for e := range hot {
		if n.clk.Expired(e, now) {
			delete(hot, e)
		}
	}
}

// commitTags records tags in storage and releases the packets of group whose
// tags were new to the scheduler. It runs on a committer goroutine; with
// replayCommits > 1 several run at once, which interfaces.ReplayTags
// allows (a tag in two concurrent batches is new to exactly one).
func (n *Node) commitTags(e epoch.Epoch, tags []interfaces.ReplayTag, group []*packet) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t0 := time.Now()
	resp, err := n.opts.Storage.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: e, Tags: tags})
	cancel()
	n.m.pluginCall.WithLabelValues("storage", "insert_replay_tags").Observe(time.Since(t0).Seconds())
	if err == nil && (resp == nil || len(resp.Seen) != len(tags)) {
		err = fmt.Errorf("%w: wrong number of answers for %d tags", interfaces.ErrMalformedReply, len(tags))
	}
	if err != nil {
		n.logLimited("replay-store", "replay tags not recorded; packets dropped", "count", len(group), "err", err)
		for _, q := range group {
			n.drop(q, dropReplayErr)
		}
		return
	}
	now := time.Now()
	for i, q := range group {
		if resp.Seen[i] {
			n.m.replayHits.Inc()
			n.logLimited("replay", "replayed packet dropped", "epoch", e)
			n.drop(q, dropReplay)
			continue
		}
		if !q.recv.Add(q.delay).After(now) {
			// Its delay is over already (a NodeDelay shorter than the
			// commit): the scheduler would release it at once, so
			// release it here and spare it that hand-off.
			n.release(q)
			continue
		}
		n.schedule(q)
	}
}

// schedule hands p to the Poisson scheduler for its delay, counted from
// when it arrived.
func (n *Node) schedule(p *packet) {
	if err := n.sched.Push(p.recv.Add(p.delay), p); err != nil {
		reason := dropQueueFull
		if errors.Is(err, mix.ErrStopped) {
			reason = dropShutdown
		}
		n.logLimited("schedule:"+reason, "packet dropped by the scheduler", "reason", reason)
		n.drop(p, reason)
	}
}

// release is the scheduler's callback: the packet's delay is over. It runs
// on the scheduler's goroutine, or on a committer's for a packet whose
// delay ended during its commit, and must not block.
func (n *Node) release(p *packet) {
	if p.next {
		n.forward(p, &p.nextID, p.epoch)
		return
	}
	n.final(p)
}

// forward queues p on the link to the node with Sphinx ID id.
func (n *Node) forward(p *packet, id *[32]byte, e epoch.Epoch) {
	rt := n.routes.Load()
	h := rt.lookup(*id, e)
	if h == nil {
		n.logLimited("no-route", "no route to next hop", "node", hex.EncodeToString(id[:8]), "epoch", e)
		n.drop(p, dropNoRoute)
		return
	}
	if !rt.stratified(n.id, *id, e) {
		n.logLimited("bad-route", "next hop breaks the layer order", "node", hex.EncodeToString(id[:8]), "layer", h.layer)
		n.drop(p, dropBadRoute)
		return
	}
	n.work.add(p.epoch, interfaces.WorkForwarded)
	if !n.links.send(h, p) {
		n.logLimited("link-full", "outbound queue full", "peer", h.peer)
	}
}

// final handles a packet whose last hop this node is.
func (n *Node) final(p *packet) {
	if n.role == interfaces.RoleMix {
		if p.recipient && !p.surbReply && n.loops.returned(p.rcpt) {
			n.putPacket(p)
			return
		}
		n.logLimited("not-for-us", "final hop at a mix that is not one of its loops")
		n.drop(p, dropNotForUs)
		return
	}
	if p.recipient && p.rcpt == clientproto.DropRecipient && !p.surbReply {
		n.drop(p, dropDecoy)
		return
	}
	if !p.recipient && !p.mailbox {
		n.logLimited("not-for-us", "final hop without a recipient")
		n.drop(p, dropNotForUs)
		return
	}
	select {
	case n.deliver <- p:
	default:
		n.logLimited("deliver-full", "mailbox write queue full")
		n.drop(p, dropStorage)
	}
}

// logLimited logs at most one line per key and second, so a flood of bad
// input is visible without flooding the log.
func (n *Node) logLimited(key, msg string, args ...any) {
	now := time.Now().UnixNano()
	v, ok := n.logSeen.Load(key)
	if !ok {
		v, _ = n.logSeen.LoadOrStore(key, new(int64))
	}
	last := v.(*int64)
	n.logMu.Lock()
	if now-*last < int64(time.Second) {
		n.logMu.Unlock()
		return
	}
	*last = now
	n.logMu.Unlock()
	n.log.Warn(msg, args...)
}

// sortedEpochs returns the keys of m in ascending order.
func sortedEpochs[V any](m map[epoch.Epoch]V) []epoch.Epoch {
	es := make([]epoch.Epoch, 0, len(m))
	for e := range m {
		es = append(es, e)
	}
	slices.Sort(es)
	return es
}
