package shopper

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/sottonet/sotto/core/audit"
	"github.com/sottonet/sotto/core/cover"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/interfaces"
)

// Path is one probe route: one mix per layer, layer 0 first.
type Path = audit.Path

// Outcome is how probes on one path fared.
type Outcome = audit.Outcome

// Plan draws a probe plan (core/audit.Plan).
func Plan(layers [][][32]byte, perMix int, r *rand.Rand) ([]Path, error) {
	return audit.Plan(layers, perMix, r)
}

// Infer estimates each mix's delivery ratio (core/audit.Infer).
func Infer(outs []Outcome) map[[32]byte]float64 { return audit.Infer(outs) }

// Report turns an epoch's outcomes into the auditor's work records: per
// mix, probes routed through it (WorkProbeSent) and the inferred number
// that crossed it (WorkProbed), in ascending node order.
func Report(outs []Outcome) []interfaces.WorkRecord {
	est := Infer(outs)
	sent := map[[32]byte]uint64{}
	for _, o := range outs {
		for _, m := range o.Path {
			sent[m] += o.Sent
		}
	}
	ids := make([][32]byte, 0, len(sent))
	for id := range sent {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b [32]byte) int { return audit.Compare(a[:], b[:]) })
	var recs []interfaces.WorkRecord
	for _, id := range ids {
		s := sent[id]
		recs = append(recs,
			interfaces.WorkRecord{Node: id, Kind: interfaces.WorkProbeSent, Packets: s},
			interfaces.WorkRecord{Node: id, Kind: interfaces.WorkProbed, Packets: uint64(math.Round(float64(s) * est[id]))})
	}
	return recs
}

// BatchID names an auditor's report for an epoch: its node ID first (the
// ledger's reporter), then the epoch and a sequence number.
func BatchID(auditor [32]byte, epoch, seq uint64) []byte {
	b := binary.BigEndian.AppendUint64(append([]byte(nil), auditor[:]...), epoch)
	return binary.BigEndian.AppendUint64(b, seq)
}

// Schedule is an auditor's probe timing: exactly the loop stream of a
// client (core/cover with only the loop rate λL), so probes leave at the
// times a client's loops would.
type Schedule struct{ s *cover.Stream }

// NewSchedule draws probe gaps at rate loopRate (a client's λL) from r.
func NewSchedule(loopRate float64, r *rand.Rand) (*Schedule, error) {
	s, err := cover.NewStream(cover.Rates{Loop: loopRate}, r)
	if err != nil {
		return nil, err
	}
	return &Schedule{s: s}, nil
}

// Next is the gap before the next probe.
func (s *Schedule) Next() time.Duration {
	d, _ := s.s.Next()
	return d
}

// Hop is one node of a probe's Sphinx path with its epoch key.
type Hop struct {
	ID  [32]byte
	Key *sphinx.PublicKey
}

// ProbeIDLength is the length of a probe's ID at the start of its payload.
const ProbeIDLength = 16

// BuildProbe makes a probe: a Sphinx packet of g's size through hops (the
// chosen mixes, then the auditor's own provider, whose Recipient command
// names mailbox), each mix asked to hold it for delays[i] as a client's
// loop would. Its payload is the probe ID followed by random bytes, like
// a loop's sealed body to every node but the last.
func BuildProbe(rnd io.Reader, g *sphinx.Geometry, hops []Hop, delays []time.Duration, mailbox [sphinx.RecipientIDLength]byte, id [ProbeIDLength]byte) ([]byte, error) {
	if len(delays) != len(hops)-1 {
		return nil, fmt.Errorf("pay-shopper: %d delays for %d hops", len(delays), len(hops))
	}
	path := make([]sphinx.PathHop, len(hops))
	for i, h := range hops {
		path[i] = sphinx.PathHop{ID: h.ID, PublicKey: h.Key}
		if i == len(hops)-1 {
			path[i].Commands = []sphinx.Command{&sphinx.Recipient{ID: mailbox}}
		} else {
			path[i].Commands = []sphinx.Command{&sphinx.NodeDelay{Delay: uint32(delays[i] / time.Millisecond)}}
		}
	}
	payload := make([]byte, g.ForwardPayloadLength)
	copy(payload, id[:])
	if _, err := io.ReadFull(rnd, payload[ProbeIDLength:]); err != nil {
		return nil, err
	}
	return sphinx.NewPacket(rnd, g, path, payload)
}

// Auditor keeps one epoch's probes in flight and their outcomes.
type Auditor struct {
	ID      [32]byte
	pending map[[ProbeIDLength]byte]int // probe → path index
	outs    []Outcome
	seq     uint64
}

// NewAuditor starts an epoch's bookkeeping over paths.
func NewAuditor(id [32]byte, paths []Path) *Auditor {
	a := &Auditor{ID: id, pending: map[[ProbeIDLength]byte]int{}}
	for _, p := range paths {
		a.outs = append(a.outs, Outcome{Path: p})
	}
	return a
}

// Paths is how many paths the auditor probes.
func (a *Auditor) Paths() int { return len(a.outs) }

// Sent records probe id sent on path i.
func (a *Auditor) Sent(i int, id [ProbeIDLength]byte) {
	a.pending[id] = i
	a.outs[i].Sent++
}

// Returned records a payload that reached the auditor's mailbox; it
// reports whether it was a probe of this epoch not seen before (a
// replayed probe counts once).
func (a *Auditor) Returned(payload []byte) bool {
	if len(payload) < ProbeIDLength {
		return false
	}
	var id [ProbeIDLength]byte
	copy(id[:], payload)
	i, ok := a.pending[id]
	if !ok {
		return false
	}
	delete(a.pending, id)
	a.outs[i].Returned++
	return true
}

// Close ends the epoch: probes still pending are lost. It returns the
// report to hand the ledger.
func (a *Auditor) Close(epoch uint64) *interfaces.RecordWorkRequest {
	clear(a.pending)
	a.seq++
	return &interfaces.RecordWorkRequest{Epoch: epoch, BatchID: BatchID(a.ID, epoch, a.seq), Records: Report(a.outs)}
}
