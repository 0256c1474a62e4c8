// Package cover draws the send schedule of Loopix cover traffic.
//
// A Sotto client sends on three independent Poisson streams: payload (rate
// λP: a real message from its send queue, or a drop decoy when the queue is
// empty), loop (λL: a packet that returns to the client through the network)
// and drop (λD: a packet the recipient provider discards). A mix sends its
// own loops at λM. The superposition of independent Poisson streams is one
// Poisson stream of the summed rate whose events are labelled at random in
// proportion to the rates, which is how Stream draws them: an observer sees
// one Poisson process of fixed-size packets whether or not anyone talks.
package cover

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Kind is what a send slot carries.
type Kind uint8

const (
	// Payload: a queued real message, or a drop decoy when none is queued.
	Payload Kind = iota + 1
	// Loop: a packet addressed back to its sender, to detect active attacks.
	Loop
	// Drop: a decoy addressed to a random provider, which discards it.
	Drop
)

func (k Kind) String() string {
	switch k {
	case Payload:
		return "payload"
	case Loop:
		return "loop"
	case Drop:
		return "drop"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Rates are the Loopix stream rates, in packets per second.
type Rates struct {
	Payload float64 // λP
	Loop    float64 // λL (λM for a mix)
	Drop    float64 // λD
}

// Total is the rate of the merged stream, λP + λL + λD.
func (r Rates) Total() float64 { return r.Payload + r.Loop + r.Drop }

// Validate refuses negative, infinite or NaN rates and an all-zero set.
func (r Rates) Validate() error {
	for _, v := range []struct {
		name string
		x    float64
	}{{"payload", r.Payload}, {"loop", r.Loop}, {"drop", r.Drop}} {
		if math.IsNaN(v.x) || math.IsInf(v.x, 0) || v.x < 0 {
			return fmt.Errorf("cover: %s rate %v is not a finite rate ≥ 0", v.name, v.x)
		}
	}
	if r.Total() <= 0 {
		return errors.New("cover: all rates are zero: nothing would ever be sent")
	}
	return nil
}

// Stream draws the merged Loopix send schedule.
type Stream struct {
	r     *rand.Rand
	rates Rates
	total float64
}

// NewStream returns a stream drawing from r (which the Stream then owns; it
// is not safe for concurrent use).
func NewStream(rates Rates, r *rand.Rand) (*Stream, error) {
	if err := rates.Validate(); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errors.New("cover: nil random source")
	}
	return &Stream{r: r, rates: rates, total: rates.Total()}, nil
}

// Next returns the gap until the next send and what that send carries. The
// gaps are independent Exp(λP + λL + λD) draws.
func (s *Stream) Next() (time.Duration, Kind) {
	gap := time.Duration(s.r.ExpFloat64() / s.total * float64(time.Second))
	u := s.r.Float64() * s.total
	switch {
	case u < s.rates.Payload:
		return gap, Payload
	case u < s.rates.Payload+s.rates.Loop:
		return gap, Loop
	default:
		return gap, Drop
	}
}
