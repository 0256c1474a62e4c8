package sim

import (
	"math"
	"slices"
	"sort"
)

// logEntry is one event in a node's pool, as the adversary sees it.
// A departure has a > 0: the pool size just before it, and b: the global
// index of the departing packet's arrival (used only at corrupt nodes,
// which reveal it). An arrival has a ≤ -1: -1-node for a packet that left
// node's departure b, simulation.clientCode-c for one sent by client c, or
// emissionCode for a packet its origin emitted without a pool (an ACK, a
// mix loop), which the adversary knows is no client's.
type logEntry struct {
	t int64
	a int32
	b uint32
}

// nodeLog is a node's events in time order, with the oldest dropped once
// no analysis can reach them (simulation.keep). Indices are global: base is the
// index of e[0].
type nodeLog struct {
	e    []logEntry
	base int64
}

func (l *nodeLog) add(e logEntry) int64 {
	l.e = append(l.e, e)
	return l.base + int64(len(l.e)-1)
}

// global turns a 32-bit index back into a global one; ok is false when the
// entry has been dropped.
func (l *nodeLog) global(b uint32) (int64, bool) {
	g := l.base + int64(b-uint32(l.base))
	return g, g < l.base+int64(len(l.e))
}

func (l *nodeLog) truncate(before int64) {
	i := sort.Search(len(l.e), func(i int) bool { return l.e[i].t >= before })
	if i == 0 {
		return
	}
	n := copy(l.e, l.e[i:])
	l.e = l.e[:n]
	l.base += int64(i)
	if cap(l.e) > 1024 && cap(l.e) > 4*len(l.e) {
		l.e = slices.Clip(slices.Clone(l.e))
	}
}

// SenderSample is the sender analysis of one target fragment.
type SenderSample struct {
	H        float64 // Shannon entropy of the posterior over clients, bits
	PTrue    float64 // posterior probability of the true sender
	Coll     float64 // Σ p²: on average equal to PTrue if the posterior is calibrated
	Eps      float64 // ln(N · PTrue): see docs/ANALYSIS.md
	Auditors float64 // posterior mass on auditors before it is conditioned away
	Support  int     // clients with a non-zero posterior
	Emission float64 // mass that reached an emission (ACK, mix loop): renormalised away
	Trunc    float64 // mass cut by the sweep's threshold or the log window: the error
}

// tracer computes sender posteriors by sweeping node logs backwards.
type tracer struct {
	s *simulation
	// Per node, the weights of departures not yet swept, by log position
	// (dense, so that a sweep reads them in order without sorting), and
	// the range [lo, hi] of global indices that hold any.
	pend     [][]float64
	lo, hi   []int64
	touched  [][]int32
	w        []float64 // per client
	wTouched []int32
	emission float64
	trunc    float64
}

// Thresholds of the backward sweep: a node's sweep stops when the mass
// its pool could still hand to earlier arrivals is below sweepStop, and
// weights below pushFloor are not followed. Both are counted in Trunc.
const (
	sweepStop = 1e-12
	pushFloor = 1e-15
)

func (tr *tracer) init(s *simulation) {
	tr.s = s
	tr.pend = make([][]float64, len(s.nodes))
	tr.lo = make([]int64, len(s.nodes))
	tr.hi = make([]int64, len(s.nodes))
	for i := range tr.hi {
		tr.hi[i] = -1
	}
	tr.touched = make([][]int32, s.cfg.Layers+1)
	tr.w = make([]float64, s.cfg.Clients+s.cfg.Auditors)
}

// class is the sweep stage of node x: its layer, or Layers for providers.
func (tr *tracer) class(x int32) int {
	if l := tr.s.net.layer[x]; l >= 0 {
		return int(l)
	}
	return tr.s.cfg.Layers
}

func (tr *tracer) add(x int32, idx int64, w float64) {
	lg := &tr.s.nodes[x].log
	if tr.hi[x] < 0 {
		c := tr.class(x)
		tr.touched[c] = append(tr.touched[c], x)
		tr.lo[x], tr.hi[x] = idx, idx
		if len(tr.pend[x]) < len(lg.e) {
			tr.pend[x] = make([]float64, len(lg.e)+len(lg.e)/4)
		}
	}
	tr.lo[x], tr.hi[x] = min(tr.lo[x], idx), max(tr.hi[x], idx)
	tr.pend[x][idx-lg.base] += w
}

// up hands weight w of arrival e to where the packet came from.
func (tr *tracer) up(e logEntry, w float64) {
	switch {
	case w < pushFloor:
		tr.trunc += w
	case e.a == emissionCode:
		tr.emission += w
	case e.a <= tr.s.clientCode:
		c := tr.s.clientCode - e.a
		if tr.w[c] == 0 {
			tr.wTouched = append(tr.wTouched, c)
		}
		tr.w[c] += w
	default:
		from := -1 - e.a
		g, ok := tr.s.nodes[from].log.global(e.b)
		if !ok {
			tr.trunc += w
			return
		}
		tr.add(from, g, w)
	}
}

// sender returns the posterior over clients of the packet that left node
// last's departure idx, whose true sender is src. Stages run layer L-1 down
// to 0, then providers; mass that providers pass back into the last layer
// (mix loops in transit) is swept in a further round. Sweeping a node twice
// is exact: the posterior is linear in the weights.
func (tr *tracer) sender(last int32, idx int64, src int32) SenderSample {
	tr.emission, tr.trunc = 0, 0
	tr.add(last, idx, 1)
	providers := len(tr.touched) - 1
	for {
		any := false
		for c := providers - 1; c >= -1; c-- {
			cls := c
			if c < 0 {
				cls = providers
			}
			// A stage never pushes into its own class (layer i pushes to
			// layer i-1 or providers, providers to the last layer or to
			// clients), so its list is stable while it runs.
			nodes := tr.touched[cls]
			for _, x := range nodes {
				any = true
				tr.sweep(x)
				tr.hi[x] = -1
			}
			tr.touched[cls] = nodes[:0]
		}
		if !any {
			break
		}
	}
	// Auditors are known to the adversary and send no messages: the
	// posterior is over clients, and their share is reported apart.
	n := int32(tr.s.cfg.Clients)
	var total, auditors float64
	for _, c := range tr.wTouched {
		if c < n {
			total += tr.w[c]
		} else {
			auditors += tr.w[c]
		}
	}
	out := SenderSample{Emission: tr.emission, Trunc: tr.trunc, Auditors: auditors / (total + auditors)}
	if total > 0 {
		out.PTrue = tr.w[src] / total
		out.Eps = math.Log(float64(n) * out.PTrue)
		for _, c := range tr.wTouched {
			if c >= n {
				continue
			}
			out.Support++
			if p := tr.w[c] / total; p > 0 {
				out.H -= p * math.Log2(p)
				out.Coll += p * p
			}
		}
	}
	for _, c := range tr.wTouched {
		tr.w[c] = 0
	}
	tr.wTouched = tr.wTouched[:0]
	return out
}

// sweep walks node x's log backwards from its latest pending departure.
// At an honest node every departure is a uniform draw from the pool
// (memorylessness), so with A the probability that a given member of the
// pool is one of the pending departures after this point, passing a
// departure of pool size n gives A ← A(1 − 1/n) + w/n, and an arrival's
// share is A. A corrupt node reveals which arrival each departure was.
func (tr *tracer) sweep(x int32) {
	lg := &tr.s.nodes[x].log
	ws := tr.pend[x]
	lo, hi := tr.lo[x]-lg.base, tr.hi[x]-lg.base
	if tr.s.nodes[x].corrupt {
		for i := hi; i >= lo; i-- {
			w := ws[i]
			if w == 0 {
				continue
			}
			ws[i] = 0
			g, ok := lg.global(lg.e[i].b)
			if !ok {
				tr.trunc += w
				continue
			}
			tr.up(lg.e[g-lg.base], w)
		}
		return
	}
	var a float64
	cur := int32(0)
	for i := hi; ; i-- {
		if i < 0 { // the log was cut here: what the pool still held is lost
			tr.trunc += a * float64(cur)
			return
		}
		e := lg.e[i]
		if e.a > 0 {
			cur = e.a
			var w float64
			if i >= lo {
				w, ws[i] = ws[i], 0
			}
			inv := 1 / float64(cur)
			a = a*(1-inv) + w*inv
			continue
		}
		if a > 0 {
			tr.up(e, a)
		}
		cur--
		if i <= lo && a*float64(cur) < sweepStop {
			tr.trunc += a * float64(cur)
			return
		}
	}
}
