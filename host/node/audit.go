package node

import (
	"context"
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sottonet/sotto/core/audit"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/interfaces"
)

// auditor is a provider's secret-shopper role (Config.Provider.AuditRate):
// probes, Sphinx packets of the network's size, leave at Poisson times
// through one mix per layer, chosen by an audit.Plan drawn per epoch, and
// back to this provider under a random recipient ID, as a mix's loops do.
// Once an epoch is over (plus slack for probes still in flight) the
// per-mix outcome, inferred with audit.Infer, goes to the accounting
// plugin as WorkProbeSent and WorkProbed records, in one batch whose ID
// starts with this node's ID.
type auditor struct {
	n      *Node
	rate   float64
	r      *rand.Rand
	mu     sync.Mutex
	epochs map[epoch.Epoch]*auditEpoch
}

type auditEpoch struct {
	outs    []audit.Outcome
	next    int
	pending map[[32]byte]int // recipient ID → path
}

// auditPerMix is how many paths of an epoch's plan cross each mix.
const auditPerMix = 4

func newAuditor(n *Node, rate float64) *auditor {
	var seed [32]byte
	_, _ = io.ReadFull(n.rand, seed[:])
	r := rand.New(rand.NewChaCha8(seed))
	clear(seed[:])
	return &auditor{n: n, rate: rate, r: r, epochs: map[epoch.Epoch]*auditEpoch{}}
}

func (a *auditor) run(ctx context.Context) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.closeEpochs(time.Now())
		rt := a.n.routes.Load()
		if er := rt.epochs[rt.current]; er != nil && time.Since(time.Unix(0, a.n.docChanged.Load())) >= 3*a.n.refreshInterval() {
			if err := a.send(er); err != nil {
				a.n.logLimited("audit", "cannot send a probe", "err", err)
			}
		}
		t.Reset(time.Duration(min(a.r.ExpFloat64()/a.rate, 3600) * float64(time.Second)))
	}
}

// send builds and sends one probe over er.
func (a *auditor) send(er *epochRoutes) error {
	n := a.n
	a.mu.Lock()
	ae := a.epochs[er.epoch]
	if ae == nil {
		layers := make([][][32]byte, len(er.layers))
		for i, l := range er.layers {
			for _, h := range l {
				layers[i] = append(layers[i], h.id)
			}
		}
		paths, err := audit.Plan(layers, auditPerMix, a.r)
		if err != nil {
			a.mu.Unlock()
			return errNoLoopPath
		}
		ae = &auditEpoch{pending: map[[32]byte]int{}}
		for _, p := range paths {
			ae.outs = append(ae.outs, audit.Outcome{Path: p})
		}
		a.epochs[er.epoch] = ae
	}
	pi := ae.next % len(ae.outs)
	ae.next++
	mixes := ae.outs[pi].Path
	a.mu.Unlock()

	path := make([]*hop, 0, len(mixes)+1)
	for _, id := range mixes {
		path = append(path, er.byID[id])
	}
	path = append(path, er.byID[n.id])
	var id [32]byte
	if _, err := io.ReadFull(n.rand, id[:]); err != nil {
		return err
	}
	hops, _, err := n.loopHops(er, path, a.r, id)
	if err != nil {
		return err
	}
	payload := make([]byte, n.geo.ForwardPayloadLength)
	if _, err := io.ReadFull(n.rand, payload); err != nil {
		return err
	}
	pkt, err := sphinx.NewPacket(n.rand, n.geo, hops, payload)
	if err != nil {
		return err
	}
	a.mu.Lock()
	ae.pending[id] = pi
	ae.outs[pi].Sent++
	a.mu.Unlock()
	p := n.getPacket()
	copy(p.buf, pkt)
	p.recv, p.outKind = time.Now(), outForward
	n.links.send(path[0], p)
	return nil
}

// returned reports whether id is one of this auditor's probes, and counts
// it (once).
func (a *auditor) returned(id [32]byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ae := range a.epochs {
		if pi, ok := ae.pending[id]; ok {
			delete(ae.pending, id)
			ae.outs[pi].Returned++
			return true
		}
	}
	return false
}

// closeEpochs reports every epoch over for longer than the slack a probe
// may still need (its hops' delays are bounded by max_delay).
func (a *auditor) closeEpochs(now time.Time) {
	slack := min(a.n.cfg.Mixing.MaxDelay, a.n.clk.Period()/2) + loopSlack
	a.mu.Lock()
	var done []epoch.Epoch
	for e := range a.epochs {
		if now.After(a.n.clk.End(e).Add(slack)) {
			done = append(done, e)
		}
	}
	outs := map[epoch.Epoch][]audit.Outcome{}
	for _, e := range done {
		outs[e] = a.epochs[e].outs
		delete(a.epochs, e)
	}
	a.mu.Unlock()
	acc := a.n.opts.Accounting
	for e, o := range outs {
		recs := auditRecords(o)
		a.n.audited.put(e, recs)
		if acc == nil {
			continue
		}
		req := &interfaces.RecordWorkRequest{Epoch: uint64(e), Records: recs}
		req.BatchID = binary.BigEndian.AppendUint64(append([]byte(nil), a.n.id[:]...), uint64(e))
		req.BatchID = append(req.BatchID, "audit"...)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := acc.RecordWork(ctx, req)
		cancel()
		if err != nil {
			a.n.log.Warn("could not report an audit to the accounting plugin", "epoch", e, "err", err)
		}
	}
}

// auditLog keeps the records of the last earningsEpochs epochs this
// node's auditor reported, for its metrics (sotto_audit_probes): a rewards
// gatherer takes, per mix, the median over every auditor's measurement
// (internal/rewards), where a ledger hears only its own provider's
// auditor. The zero value is ready.
type auditLog struct {
	mu     sync.Mutex
	epochs map[epoch.Epoch][]interfaces.WorkRecord
}

func (l *auditLog) put(e epoch.Epoch, recs []interfaces.WorkRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.epochs == nil {
		l.epochs = map[epoch.Epoch][]interfaces.WorkRecord{}
	}
	l.epochs[e] = recs
	for old := range l.epochs {
		if old+earningsEpochs <= e {
			delete(l.epochs, old)
		}
	}
}

// each calls f for every kept epoch's records.
func (l *auditLog) each(f func(e epoch.Epoch, recs []interfaces.WorkRecord)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for e, recs := range l.epochs {
		f(e, recs)
	}
}

// auditRecords are the per-mix records of an epoch's outcomes.
func auditRecords(outs []audit.Outcome) []interfaces.WorkRecord {
	est := audit.Infer(outs)
	sent := map[[32]byte]uint64{}
	for _, o := range outs {
		for _, m := range o.Path {
			sent[m] += o.Sent
		}
	}
	var recs []interfaces.WorkRecord
	for id, s := range sent {
		recs = append(recs,
			interfaces.WorkRecord{Node: id, Kind: interfaces.WorkProbeSent, Packets: s},
			interfaces.WorkRecord{Node: id, Kind: interfaces.WorkProbed, Packets: uint64(math.Round(float64(s) * est[id]))})
	}
	return recs
}
