package sim

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/sottonet/sotto/core/cover"
	"github.com/sottonet/sotto/core/mix"
	"github.com/sottonet/sotto/core/pkidoc"
	"github.com/sottonet/sotto/core/topology"
)

// Kind is what a simulated packet is. Every kind looks the same on a link.
type Kind uint8

const (
	Fragment Kind = iota // a fragment of a real message
	Decoy                // a payload slot with an empty queue: a drop decoy
	Loop                 // a client loop, back to the client's own provider
	Drop                 // a client drop decoy to a random provider
	ACK                  // a provider's SURB ACK for a fragment or a loop
	MixLoop              // a mix's own loop
	Probe                // an auditor's probe (secret-shopper accounting)
	numKinds
)

var kindNames = [numKinds]string{"fragment", "decoy", "loop", "drop", "ack", "mixloop", "probe"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

const maxPath = pkidoc.MaxLayers + 2

// packet is one packet in flight. Its path lists every hop; hops before
// the last hold it for a delay, the last receives it.
type packet struct {
	path   [maxPath]int32
	born   int64 // when its sender emitted it
	hopT   int64 // when it reached its current hop
	src    int32 // sending client (fragments, decoys, loops, drops)
	msg    int32 // message of a fragment
	ackTo  int32 // provider an ACK for it goes to
	upNode int32 // previous hop (for the arrival log), or an origin code
	upIdx  uint32
	arrIdx uint32 // its arrival entry in the current hop's log
	kind   Kind
	hop    uint8
	plen   uint8
	tag    uint32 // the single-mix analysis follows it (0: no)
}

type client struct {
	gw           int32
	qhead, qtail int32 // queued messages, linked through message.next
}

type message struct {
	src, dst     int32
	born         int64
	nfrag, sent  int32
	done, next   int32
	firstSendSet bool
}

type nodeState struct {
	pool     int32
	corrupt  bool
	area     float64 // ∫ pool dt over the measured time, packet·seconds
	lastT    int64
	arrivals int64 // pool arrivals in the measured time
	log      nodeLog
	tags     []mixTag
}

// Progress is called from Run every few million events with the
// simulated time reached and the time the run ends at.
type Progress func(now, end time.Duration, events uint64)

// Option configures Run.
type Option func(*runOpts)

type runOpts struct {
	progress Progress
	log      *slog.Logger
}

// WithProgress reports progress to f.
func WithProgress(f Progress) Option { return func(o *runOpts) { o.progress = f } }

// WithLogger logs the run's phases to l.
func WithLogger(l *slog.Logger) Option { return func(o *runOpts) { o.log = l } }

// simulation is one run's state. It is not safe for concurrent use; a sweep runs
// one per goroutine.
type simulation struct {
	cfg  Config
	net  *network
	topo *topology.Topology

	rPath, rDelay, rPick, rWork, rSample *rand.Rand
	clientStream, mixStream, probeStream *cover.Stream

	q       queue
	pkts    []packet
	free    []int32
	clients []client
	msgs    []message
	freeMsg []int32
	nodes   []nodeState

	now, warm, end int64
	measuring      bool
	events         uint64
	fragCap        int
	nfrag          int32
	maxDelay       time.Duration
	keep           int64 // how long event logs are kept, ns
	clientCode     int32 // arrival code of client 0; client c is clientCode - c
	targetP        float64

	trace   tracer
	res     *Result
	tagP    float64 // probability that an arrival at a mix is tagged
	nextTag uint32
}

// origin codes in an arrival's upNode
const emissionCode = math.MinInt32

// Run builds the network of cfg and simulates it. It stops early, with
// ctx's error, when ctx is cancelled.
func Run(ctx context.Context, cfg Config, opts ...Option) (*Result, error) {
	var o runOpts
	for _, f := range opts {
		f(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim: not started: %w", err)
	}
	s, err := newSimulation(cfg)
	if err != nil {
		return nil, err
	}
	o.log.Info("sim: network built", "mixes", s.net.mixes, "providers", len(s.net.nodes)-s.net.mixes,
		"clients", s.cfg.Clients, "build", s.res.BuildTime)
	if err := s.run(ctx, o); err != nil {
		return nil, err
	}
	o.log.Info("sim: done", "events", s.res.Events, "wall", s.res.WallTime, "targets", s.res.Sender.N)
	return s.res, nil
}

// newSimulation builds the simulated network (its signed document included) for cfg.
func newSimulation(cfg Config) (*simulation, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	stream := func(k uint64) *rand.Rand { return rand.New(rand.NewPCG(cfg.Seed, k)) }
	net, err := buildNetwork(&cfg, stream(1))
	if err != nil {
		return nil, err
	}
	s := &simulation{
		cfg: cfg, net: net, topo: net.topo,
		rPath: stream(2), rDelay: stream(3), rPick: stream(4), rWork: stream(5), rSample: stream(6),
		nodes: make([]nodeState, len(net.nodes)),
	}
	s.fragCap = fragCapacity(net.topo.Geometry.UserForwardPayloadLength)
	s.nfrag = int32((cfg.MessageBytes + s.fragCap - 1) / s.fragCap)
	s.maxDelay = time.Duration(10 / cfg.Mu * float64(time.Second)) // client/pki.go delayCap
	s.warm = int64(cfg.Warmup)
	s.end = s.warm + int64(cfg.Duration)
	s.keep = int64((float64(cfg.Layers+1)*10 + 25) / cfg.Mu * float64(time.Second))
	s.clientCode = -1 - int32(len(net.nodes))
	s.clientStream, err = cover.NewStream(cover.Rates{
		Payload: float64(cfg.Clients) * cfg.LambdaP,
		Loop:    float64(cfg.Clients) * cfg.LambdaL,
		Drop:    float64(cfg.Clients) * cfg.LambdaD,
	}, stream(7))
	if err != nil {
		return nil, fmt.Errorf("sim: client stream: %w", err)
	}
	if cfg.LambdaM > 0 {
		s.mixStream, err = cover.NewStream(cover.Rates{Loop: float64(net.mixes) * cfg.LambdaM}, stream(8))
		if err != nil {
			return nil, fmt.Errorf("sim: mix loop stream: %w", err)
		}
	}
	// Corrupt nodes: a seeded choice of round(f·n) of each kind.
	rc := stream(9)
	pickCorrupt := func(lo, hi int, f float64) {
		n := hi - lo
		k := int(math.Round(f * float64(n)))
		for _, i := range rc.Perm(n)[:k] {
			s.nodes[lo+i].corrupt = true
		}
	}
	pickCorrupt(0, net.mixes, cfg.CorruptMixes)
	pickCorrupt(net.mixes, len(net.nodes), cfg.CorruptProviders)
	if cfg.Auditors > 0 {
		s.probeStream, err = cover.NewStream(cover.Rates{Loop: float64(cfg.Auditors) * cfg.ProbeRate}, stream(11))
		if err != nil {
			return nil, fmt.Errorf("sim: probe stream: %w", err)
		}
	}
	// Auditors are clients cfg.Clients.. on: the posterior covers them too.
	s.clients = make([]client, cfg.Clients+cfg.Auditors)
	for i := range s.clients {
		// Clients spread evenly over providers, as a deployment would aim for.
		s.clients[i] = client{gw: int32(net.mixes + i%(len(net.nodes)-net.mixes)), qhead: -1, qtail: -1}
	}
	if cfg.TargetRate > 0 && cfg.MessageRate > 0 {
		fragRate := float64(cfg.Clients) * min(cfg.MessageRate*float64(s.nfrag), cfg.LambdaP)
		s.targetP = min(1, cfg.TargetRate/fragRate)
	}
	if cfg.MixTagRate > 0 {
		s.tagP = min(1, cfg.MixTagRate/NewAnalytic(cfg).LambdaMix)
	}
	s.res = newResult(&cfg, s)
	s.res.BuildTime = time.Since(t0)
	s.trace.init(s)
	return s, nil
}

func (s *simulation) run(ctx context.Context, o runOpts) error {
	t0 := time.Now()
	s.q.push(event{t: s.expGap(s.clientStream), kind: evSend})
	if s.mixStream != nil {
		s.q.push(event{t: s.expGap(s.mixStream), kind: evMixLoop})
	}
	if s.cfg.MessageRate > 0 {
		s.q.push(event{t: s.msgGap(), kind: evMessage})
	}
	if s.probeStream != nil {
		s.q.push(event{t: s.expGap(s.probeStream), kind: evProbe})
	}
	s.q.push(event{t: s.keep, kind: evTruncate})
	var ms runtime.MemStats
	for s.q.Len() > 0 {
		e := s.q.pop()
		if e.t > s.end {
			break
		}
		if !s.measuring && e.t >= s.warm {
			s.startMeasuring(e.t)
		}
		s.now = e.t
		s.events++
		switch e.kind {
		case evDepart:
			s.depart(e.id)
		case evSend:
			gap, k := s.clientStream.Next()
			s.clientSend(int32(s.rPick.IntN(s.cfg.Clients)), k)
			s.q.push(event{t: s.now + int64(gap), kind: evSend})
		case evMixLoop:
			gap, _ := s.mixStream.Next()
			s.mixLoop(int32(s.rPick.IntN(s.net.mixes)))
			s.q.push(event{t: s.now + int64(gap), kind: evMixLoop})
		case evProbe:
			gap, _ := s.probeStream.Next()
			s.probe(int32(s.cfg.Clients + s.rPick.IntN(s.cfg.Auditors)))
			s.q.push(event{t: s.now + int64(gap), kind: evProbe})
		case evMessage:
			s.newMessage()
			s.q.push(event{t: s.now + s.msgGap(), kind: evMessage})
		case evTruncate:
			for i := range s.nodes {
				s.nodes[i].log.truncate(s.now - s.keep)
			}
			s.q.push(event{t: s.now + s.keep/2, kind: evTruncate})
		}
		if s.events&(1<<16-1) == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("sim: stopped at %v of %v: %w", time.Duration(s.now), time.Duration(s.end), err)
			}
		}
		if s.events&(1<<20-1) == 0 {
			runtime.ReadMemStats(&ms)
			s.res.PeakHeap = max(s.res.PeakHeap, ms.HeapAlloc)
			if o.progress != nil {
				o.progress(time.Duration(s.now), time.Duration(s.end), s.events)
			}
		}
	}
	s.finish(min(s.now, s.end))
	runtime.ReadMemStats(&ms)
	s.res.PeakHeap = max(s.res.PeakHeap, ms.HeapAlloc)
	s.res.Events = s.events
	s.res.WallTime = time.Since(t0)
	if o.progress != nil {
		o.progress(time.Duration(s.end), time.Duration(s.end), s.events)
	}
	return nil
}

func (s *simulation) expGap(st *cover.Stream) int64 {
	gap, _ := st.Next()
	return int64(gap)
}

func (s *simulation) msgGap() int64 {
	return int64(s.rWork.ExpFloat64() / (float64(s.cfg.Clients) * s.cfg.MessageRate) * float64(time.Second))
}

// hopDelay is one hop's delay as a client draws it: core/mix's Exp(μ),
// capped at 10/μ, cut to whole milliseconds (client/pki.go nodeDelay).
func (s *simulation) hopDelay() int64 {
	d := mix.ExpDelay(s.rDelay, s.cfg.Mu, s.maxDelay)
	if !s.cfg.NoQuantize {
		d = d.Truncate(time.Millisecond)
	}
	return int64(d)
}

func (s *simulation) startMeasuring(t int64) {
	s.measuring = true
	for i := range s.nodes {
		s.nodes[i].lastT = t
	}
}

// alloc takes a slot of items from its free list, or grows items.
func alloc[T any](items *[]T, free *[]int32) int32 {
	if n := len(*free); n > 0 {
		id := (*free)[n-1]
		*free = (*free)[:n-1]
		return id
	}
	var zero T
	*items = append(*items, zero)
	return int32(len(*items) - 1)
}

// pathMixes draws one mix per layer with core/topology.
func (s *simulation) pathMixes() []*topology.Node {
	ms, err := s.topo.Mixes(s.rPath, nil)
	if err != nil {
		panic(fmt.Sprintf("sim: complete topology has no path: %v", err)) // New checked Complete
	}
	return ms
}

func (s *simulation) newPacket(k Kind) (int32, *packet) {
	id := alloc(&s.pkts, &s.free)
	p := &s.pkts[id]
	*p = packet{kind: k, born: s.now, msg: -1, src: -1, ackTo: -1}
	if s.measuring {
		s.res.Sent[k]++
	}
	return id, p
}

// setPath fills p's path with first, the mixes ms, and last (when ≥ 0).
func (s *simulation) setPath(p *packet, first int32, ms []*topology.Node, last int32) {
	n := 0
	if first >= 0 {
		p.path[n] = first
		n++
	}
	for _, m := range ms {
		p.path[n] = s.net.index[m]
		n++
	}
	if last >= 0 {
		p.path[n] = last
		n++
	}
	p.plen = uint8(n)
}

func (s *simulation) clientSend(c int32, k cover.Kind) {
	cl := &s.clients[c]
	var kind Kind
	var dest int32
	var msg int32 = -1
	switch k {
	case cover.Payload:
		if cl.qhead >= 0 {
			kind, msg = Fragment, cl.qhead
			m := &s.msgs[msg]
			dest = s.clients[m.dst].gw
			if !m.firstSendSet {
				m.firstSendSet = true
				if s.measuring && m.born >= s.warm {
					s.res.QueueWait.add(float64(s.now-m.born) / 1e9)
				}
			}
			m.sent++
			if m.sent == m.nfrag {
				cl.qhead = m.next
				if cl.qhead < 0 {
					cl.qtail = -1
				}
			}
		} else {
			kind, dest = Decoy, s.randomProvider()
		}
	case cover.Loop:
		kind, dest = Loop, cl.gw
	default:
		kind, dest = Drop, s.randomProvider()
	}
	ms := s.pathMixes()
	id, p := s.newPacket(kind)
	p.src, p.msg, p.ackTo = c, msg, cl.gw
	s.setPath(p, cl.gw, ms, dest)
	s.arrive(id, p, cl.gw, s.clientCode-c, 0)
}

// probe sends auditor a's probe: a loop back to its own provider over a
// uniformly drawn path, which the provider ACKs as it does any loop.
func (s *simulation) probe(a int32) {
	cl := &s.clients[a]
	ms := s.pathMixes()
	id, p := s.newPacket(Probe)
	p.src, p.ackTo = a, cl.gw
	s.setPath(p, cl.gw, ms, cl.gw)
	s.arrive(id, p, cl.gw, s.clientCode-a, 0)
}

func (s *simulation) randomProvider() int32 {
	n, err := s.topo.Provider(s.rPath)
	if err != nil {
		panic(fmt.Sprintf("sim: complete topology has no provider: %v", err))
	}
	return s.net.index[n]
}

func (s *simulation) mixLoop(m int32) {
	path, err := s.topo.MixLoop(s.rPath, s.net.nodes[m].ID)
	if err != nil {
		panic(fmt.Sprintf("sim: mix loop of a mix of a complete topology: %v", err))
	}
	id, p := s.newPacket(MixLoop)
	p.src = m
	s.setPath(p, -1, path, -1)
	s.arrive(id, p, p.path[0], emissionCode, 0)
}

func (s *simulation) sendACK(from, to int32) {
	ms := s.pathMixes()
	id, p := s.newPacket(ACK)
	p.src = from
	s.setPath(p, -1, ms, to)
	s.arrive(id, p, p.path[0], emissionCode, 0)
}

func (s *simulation) newMessage() {
	n := int32(s.cfg.Clients)
	src := int32(s.rWork.IntN(int(n)))
	dst := int32(s.rWork.IntN(int(n) - 1))
	if dst >= src {
		dst++
	}
	id := alloc(&s.msgs, &s.freeMsg)
	s.msgs[id] = message{src: src, dst: dst, born: s.now, nfrag: s.nfrag, next: -1}
	cl := &s.clients[src]
	if cl.qtail >= 0 {
		s.msgs[cl.qtail].next = id
	} else {
		cl.qhead = id
	}
	cl.qtail = id
	if s.measuring {
		s.res.Messages++
	}
}

// advance integrates node x's pool size up to now.
func (s *simulation) advance(n *nodeState) {
	if s.measuring {
		n.area += float64(n.pool) * float64(s.now-n.lastT) / 1e9
		n.lastT = s.now
	}
}

// arrive puts packet id into the pool of node x, coming from upNode's
// departure upIdx (or from a client or an emission, by code).
func (s *simulation) arrive(id int32, p *packet, x int32, upNode int32, upIdx uint32) {
	n := &s.nodes[x]
	s.advance(n)
	n.pool++
	if s.targetP > 0 {
		p.arrIdx = uint32(n.log.add(logEntry{t: s.now, a: upNode, b: upIdx}))
	}
	p.hopT = s.now
	if s.measuring {
		n.arrivals++
		s.res.LinkPackets++
		// Tags are drawn independently of the pool's state, so that
		// what a tag finds is what an arrival finds (PASTA).
		if x < int32(s.net.mixes) && !n.corrupt && s.tagP > 0 && s.rSample.Float64() < s.tagP {
			s.nextTag++
			n.tags = append(n.tags, mixTag{id: s.nextTag, m: 1, n0: n.pool})
			p.tag = s.nextTag
		}
	}
	s.q.push(event{t: s.now + s.hopDelay(), kind: evDepart, id: id})
}

func (s *simulation) depart(id int32) {
	p := &s.pkts[id]
	x := p.path[p.hop]
	n := &s.nodes[x]
	s.advance(n)
	var depIdx int64
	if s.targetP > 0 { // only the sender analysis reads the logs
		depIdx = n.log.add(logEntry{t: s.now, a: n.pool, b: p.arrIdx})
	}
	for i := 0; i < len(n.tags); {
		t := &n.tags[i]
		if t.depart(n.pool, p.tag == t.id) {
			if s.measuring {
				s.res.Mix.record(t)
			}
			n.tags[i] = n.tags[len(n.tags)-1]
			n.tags = n.tags[:len(n.tags)-1]
			continue
		}
		i++
	}
	p.tag = 0
	n.pool--
	if s.measuring {
		d := float64(s.now-p.hopT) / 1e9
		if x < int32(s.net.mixes) {
			s.res.HopMix.add(d)
		} else {
			s.res.HopProvider.add(d)
		}
	}
	p.hop++
	next := p.path[p.hop]
	if p.hop == p.plen-1 {
		s.final(id, p, x, depIdx, next)
		return
	}
	s.arrive(id, p, next, -1-x, uint32(depIdx))
}

// final delivers p at its last hop x, which it reached from lastNode's
// departure lastIdx.
func (s *simulation) final(id int32, p *packet, lastNode int32, lastIdx int64, x int32) {
	if s.measuring {
		s.res.LinkPackets++
	}
	measured := s.measuring && p.born >= s.warm
	switch p.kind {
	case Fragment:
		if measured {
			s.res.EndToEnd.add(float64(s.now-p.born) / 1e9)
		}
		m := &s.msgs[p.msg]
		m.done++
		if m.done == m.nfrag {
			if s.measuring && m.born >= s.warm {
				s.res.MessageLatency.add(float64(s.now-m.born) / 1e9)
			}
			s.freeMsg = append(s.freeMsg, p.msg)
		}
		if measured && s.targetP > 0 && s.res.Sender.N < int64(s.cfg.MaxTargets) && s.rSample.Float64() < s.targetP {
			s.res.Sender.record(s.trace.sender(lastNode, lastIdx, p.src))
		}
		if !s.cfg.NoACKs {
			s.sendACK(x, p.ackTo)
		}
	case Decoy, Drop:
		if measured {
			s.res.EndToEnd.add(float64(s.now-p.born) / 1e9)
		}
	case Loop, Probe:
		if measured {
			s.res.EndToEnd.add(float64(s.now-p.born) / 1e9)
		}
		if !s.cfg.NoACKs {
			s.sendACK(x, p.ackTo)
		}
	}
	s.free = append(s.free, id)
}

func (s *simulation) finish(now int64) {
	s.now = now
	for i := range s.nodes {
		s.advance(&s.nodes[i])
	}
	s.res.finish(s)
}
