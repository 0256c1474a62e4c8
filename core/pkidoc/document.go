package pkidoc

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// Limits of the document encoding.
const (
	MaxDocumentNodes = 4096
	MaxLayers        = 16
	documentVersion  = 2 // 2: the epoch clock (genesis, grace) in the parameters
	// documentVersionDownstream adds the downstream's cadence and slots
	// to the parameters. A document that states neither is encoded as
	// version 2, so existing documents keep their encoding and hash.
	documentVersionDownstream = 3
	// MaxDownstreamSlots bounds NetworkParams.DownstreamSlots.
	MaxDownstreamSlots = 64
	// MinDownstreamInterval and MaxDownstreamInterval bound
	// NetworkParams.DownstreamInterval when stated.
	MinDownstreamInterval = 10 * time.Millisecond
	MaxDownstreamInterval = time.Minute
	// DefaultDownstreamInterval is the cadence of the pushed downstream
	// when the document does not state one: short enough that the wait for
	// the next frame stays within the 100 ms the client protocol aims at
	// beyond slot wait and mixing (docs/SPEC.md, "Pushed downstream").
	DefaultDownstreamInterval = 80 * time.Millisecond
)

// NetworkParams are the parameters every member of a network must share.
// Geometry is given as plain numbers (the Sphinx package derives the rest).
type NetworkParams struct {
	Hops        uint8   // mix hops of a forward path, providers excluded
	PayloadLen  uint32  // user forward payload length in bytes
	Layers      uint8   // number of mix layers
	Mu          float64 // rate of the per-hop Exp(μ) delay, per second
	LambdaP     float64 // client payload rate, per second
	LambdaL     float64 // client loop cover rate
	LambdaD     float64 // client drop cover rate
	LambdaM     float64 // mix loop cover rate
	EpochPeriod time.Duration
	// Genesis is the start of epoch 0 and EpochGrace how long a key is
	// still accepted after its epoch: with EpochPeriod, the network's
	// epoch clock, so a client learns it from the network instead of from
	// a node's config. A zero Genesis means the PKI did not state it
	// (encoded as 0); nodes refuse a document whose stated clock differs
	// from their own.
	Genesis    time.Time
	EpochGrace time.Duration
	// DownstreamInterval and DownstreamSlots shape the pushed downstream
	// from a provider to each client (docs/SPEC.md, "Pushed downstream"):
	// one frame every DownstreamInterval holding exactly DownstreamSlots
	// message slots. Zero (both; a document states both or neither) means
	// the defaults of Downstream, sized from the rates.
	DownstreamInterval time.Duration
	DownstreamSlots    uint16
}

// Downstream returns the downstream's cadence and slots per frame: those
// the document states, else DefaultDownstreamInterval and the fewest slots
// that carry twice the arrivals a client expects at that cadence. A client
// expects its own loops back (λL), an acknowledgement per payload it sends
// (at most λP) and, if its contacts send as much as it does, about λP
// messages: r = λL + 2·λP per second. Twice r leaves room for bursts, and
// a backlog drains at the same rate.
func (p *NetworkParams) Downstream() (interval time.Duration, slots int) {
	if p.DownstreamInterval > 0 && p.DownstreamSlots > 0 {
		return p.DownstreamInterval, int(p.DownstreamSlots)
	}
	interval = DefaultDownstreamInterval
	r := p.LambdaL + 2*p.LambdaP
	slots = int(math.Ceil(2 * r * interval.Seconds()))
	return interval, min(max(slots, 1), MaxDownstreamSlots)
}

func (p *NetworkParams) statesDownstream() bool {
	return p.DownstreamInterval != 0 || p.DownstreamSlots != 0
}

// HasClock reports whether the parameters state the epoch clock.
func (p *NetworkParams) HasClock() bool { return !p.Genesis.IsZero() }

// Validate refuses parameters no network can run with, and floats that have
// more than one encoding (NaN, negative zero) or none that makes sense.
func (p *NetworkParams) Validate() error {
	switch {
	case p.Hops == 0:
		return fmt.Errorf("%w: zero hops", ErrMalformed)
	case p.PayloadLen == 0:
		return fmt.Errorf("%w: zero payload length", ErrMalformed)
	case p.Layers == 0 || p.Layers > MaxLayers:
		return fmt.Errorf("%w: %d layers", ErrMalformed, p.Layers)
	case p.EpochPeriod <= 0:
		return fmt.Errorf("%w: epoch period %v", ErrMalformed, p.EpochPeriod)
	case p.EpochGrace < 0 || p.EpochGrace >= p.EpochPeriod:
		return fmt.Errorf("%w: epoch grace %v, want 0 ≤ grace < period %v", ErrMalformed, p.EpochGrace, p.EpochPeriod)
	case p.HasClock() && (p.Genesis.UnixNano() <= 0 || !p.Genesis.Equal(time.Unix(0, p.Genesis.UnixNano()))):
		return fmt.Errorf("%w: genesis %v is not a positive time in nanoseconds since 1970", ErrMalformed, p.Genesis)
	case p.statesDownstream() && (p.DownstreamInterval < MinDownstreamInterval || p.DownstreamInterval > MaxDownstreamInterval ||
		p.DownstreamSlots == 0 || p.DownstreamSlots > MaxDownstreamSlots):
		return fmt.Errorf("%w: downstream of %d slots every %v (1 to %d slots, every %v to %v)",
			ErrMalformed, p.DownstreamSlots, p.DownstreamInterval, MaxDownstreamSlots, MinDownstreamInterval, MaxDownstreamInterval)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"mu", p.Mu}, {"lambda_p", p.LambdaP}, {"lambda_l", p.LambdaL}, {"lambda_d", p.LambdaD}, {"lambda_m", p.LambdaM}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 || math.Signbit(f.v) {
			return fmt.Errorf("%w: %s = %v", ErrMalformed, f.name, f.v)
		}
	}
	return nil
}

// Document is the PKI's answer for one epoch: the network's parameters and
// every valid descriptor for that epoch, sorted by identity. Its canonical
// encoding is hashed with SHA-256; two members hold the same view exactly
// when their hashes are equal.
type Document struct {
	Network string
	Epoch   uint64
	Params  NetworkParams
	Nodes   []*SignedDescriptor // ascending by Identity, one per identity
}

// NewDocument builds a document from descriptors in any order. Every
// descriptor must verify and be for this network and epoch; two for one
// identity are refused (an assembler excludes equivocators first).
func NewDocument(network string, epoch uint64, params NetworkParams, nodes []*SignedDescriptor) (*Document, error) {
	d := &Document{Network: network, Epoch: epoch, Params: params, Nodes: slices.Clone(nodes)}
	slices.SortFunc(d.Nodes, func(a, b *SignedDescriptor) int {
		return bytes.Compare(a.Descriptor.Identity, b.Descriptor.Identity)
	})
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// Validate checks everything ParseDocument checks, on a decoded value.
func (d *Document) Validate() error {
	if d.Network == "" || len(d.Network) > MaxNetworkLen {
		return fmt.Errorf("%w: network name of %d bytes", ErrMalformed, len(d.Network))
	}
	if err := d.Params.Validate(); err != nil {
		return err
	}
	if len(d.Nodes) > MaxDocumentNodes {
		return fmt.Errorf("%w: %d nodes exceed %d", ErrMalformed, len(d.Nodes), MaxDocumentNodes)
	}
	for i, n := range d.Nodes {
		if n == nil {
			return fmt.Errorf("%w: node %d is nil", ErrMalformed, i)
		}
		if err := n.Verify(); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		if n.Descriptor.Network != d.Network || n.Descriptor.Epoch != d.Epoch {
			return fmt.Errorf("%w: node %d is for network %q epoch %d, document for %q epoch %d",
				ErrMalformed, i, n.Descriptor.Network, n.Descriptor.Epoch, d.Network, d.Epoch)
		}
		if i > 0 && bytes.Compare(d.Nodes[i-1].Descriptor.Identity, n.Descriptor.Identity) >= 0 {
			return fmt.Errorf("%w: nodes not in strictly ascending identity order at %d", ErrMalformed, i)
		}
	}
	return nil
}

// Encode returns the canonical encoding.
func (d *Document) Encode() ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	var w pkiWriter
	p := d.Params
	if p.statesDownstream() {
		w.u8(documentVersionDownstream)
	} else {
		w.u8(documentVersion)
	}
	w.bytes8([]byte(d.Network))
	w.u64(d.Epoch)
	w.u8(p.Hops)
	w.u32(p.PayloadLen)
	w.u8(p.Layers)
	w.f64(p.Mu)
	w.f64(p.LambdaP)
	w.f64(p.LambdaL)
	w.f64(p.LambdaD)
	w.f64(p.LambdaM)
	w.u64(uint64(p.EpochPeriod))
	var genesis int64
	if p.HasClock() {
		genesis = p.Genesis.UnixNano()
	}
	w.u64(uint64(genesis))
	w.u64(uint64(p.EpochGrace))
	if p.statesDownstream() {
		w.u64(uint64(p.DownstreamInterval))
		w.u16(p.DownstreamSlots)
	}
	w.u16(uint16(len(d.Nodes)))
	for _, n := range d.Nodes {
		w.bytes16(n.Raw)
	}
	return w.b, nil
}

// Hash returns SHA-256 of the canonical encoding.
func (d *Document) Hash() ([32]byte, error) {
	b, err := d.Encode()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// documentFixedSize is the largest encoding of a document's fields before
// its nodes: version 1, network 1+64, epoch 8, hops 1, payload length 4,
// layers 1, five rates 40, period 8, genesis 8, grace 8, downstream
// interval 8 and slots 2 (version 3), node count 2.
const documentFixedSize = 156

// MaxDocumentSize bounds an encoded document.
const MaxDocumentSize = documentFixedSize + MaxDocumentNodes*(2+MaxDescriptorSize)

// ParseDocument decodes, verifies and checks a document: canonical encoding
// only, no trailing bytes, every descriptor signed, for this network and
// epoch, in strictly ascending identity order. It never panics.
func ParseDocument(b []byte) (*Document, error) {
	if len(b) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: document of %d bytes", ErrMalformed, len(b))
	}
	r := pkiReader{b: b}
	v := r.u8()
	if r.err == nil && v != documentVersion && v != documentVersionDownstream {
		return nil, fmt.Errorf("%w: document version %d, want %d or %d", ErrMalformed, v, documentVersion, documentVersionDownstream)
	}
	d := &Document{}
	d.Network = string(r.bytes8(MaxNetworkLen))
	d.Epoch = r.u64()
	p := &d.Params
	p.Hops = r.u8()
	p.PayloadLen = r.u32()
	p.Layers = r.u8()
	p.Mu = r.f64()
	p.LambdaP = r.f64()
	p.LambdaL = r.f64()
	p.LambdaD = r.f64()
	p.LambdaM = r.f64()
	period := r.u64()
	if period > math.MaxInt64 {
		return nil, fmt.Errorf("%w: epoch period overflows", ErrMalformed)
	}
	p.EpochPeriod = time.Duration(period)
	genesis, grace := r.u64(), r.u64()
	if genesis > math.MaxInt64 || grace > math.MaxInt64 {
		return nil, fmt.Errorf("%w: genesis or grace overflows", ErrMalformed)
	}
	if genesis != 0 {
		p.Genesis = time.Unix(0, int64(genesis))
	}
	p.EpochGrace = time.Duration(grace)
	if v == documentVersionDownstream {
		interval := r.u64()
		if interval > math.MaxInt64 {
			return nil, fmt.Errorf("%w: downstream interval overflows", ErrMalformed)
		}
		p.DownstreamInterval = time.Duration(interval)
		p.DownstreamSlots = r.u16()
		if r.err == nil && !p.statesDownstream() {
			// Version 3 with nothing stated has a version 2 encoding:
			// one document, one encoding.
			return nil, fmt.Errorf("%w: version %d document states no downstream", ErrMalformed, v)
		}
	}
	n := int(r.u16())
	if n > MaxDocumentNodes {
		return nil, fmt.Errorf("%w: %d nodes", ErrMalformed, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		raw := r.bytes16(MaxDescriptorSize)
		if r.err != nil {
			break
		}
		sd, err := ParseSignedDescriptor(raw)
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		d.Nodes = append(d.Nodes, sd)
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b)-r.off)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// Layers assigns every mix of the document to one of Params.Layers layers
// and returns them, layer 0 first. The assignment is a pure function of the
// document: mixes are ordered by SHA-256("sotto layer" || network || epoch ||
// identity) and dealt round-robin, so every member computes the same layers,
// layers differ in size by at most one, and a node cannot choose its layer
// (short of grinding identities, see docs/SPEC.md).
func (d *Document) Layers() [][]*SignedDescriptor {
	type ranked struct {
		key [32]byte
		n   *SignedDescriptor
	}
	var mixes []ranked
	for _, n := range d.Nodes {
		if n.Descriptor.Role != RoleMix {
			continue
		}
		h := sha256.New()
		h.Write([]byte("sotto layer\x00"))
		h.Write([]byte(d.Network))
		h.Write(binary.BigEndian.AppendUint64(nil, d.Epoch))
		h.Write(n.Descriptor.Identity)
		var r ranked
		h.Sum(r.key[:0])
		r.n = n
		mixes = append(mixes, r)
	}
	slices.SortFunc(mixes, func(a, b ranked) int { return bytes.Compare(a.key[:], b.key[:]) })
	layers := make([][]*SignedDescriptor, max(1, int(d.Params.Layers)))
	for i, m := range mixes {
		layers[i%len(layers)] = append(layers[i%len(layers)], m.n)
	}
	return layers
}

// Providers returns the document's providers in identity order.
func (d *Document) Providers() []*SignedDescriptor {
	var out []*SignedDescriptor
	for _, n := range d.Nodes {
		if n.Descriptor.Role == RoleProvider {
			out = append(out, n)
		}
	}
	return out
}
