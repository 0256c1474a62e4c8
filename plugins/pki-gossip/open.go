package pkigossip

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/ratelimit"
)

// The "open" design: anyone may join, at a stated price. Each identity pays,
// per epoch, a memory-hard proof of work: a nonce such that
//
//	Argon2id(password = nonce u64, salt = SHA-256("sotto pki admission v1\0"
//	         ‖ bytes8 network ‖ epoch u64 ‖ identity), passes, memory, 1 lane, 32 bytes)
//
// has at least Difficulty leading zero bits. The output is the identity's
// ticket for that epoch: when more identities pay than MaxPerEpoch, the
// lowest tickets win (a lottery weighted by work, the same on every member,
// so views converge). A member checks at most SourceRate proofs a second
// (burst SourceBurst) from one source address, one at a time.
const admissionSaltLabel = "sotto pki admission v1\x00"

// Defaults of the open design; README.md ("Costs") has what they cost here.
const (
	DefaultOpenMemoryKiB   = 64 * 1024
	DefaultOpenPasses      = 1
	DefaultOpenDifficulty  = 8
	DefaultOpenMaxPerEpoch = 256
	DefaultOpenSourceRate  = 1.0
	DefaultOpenSourceBurst = 32

	maxDifficulty = 32
	maxSources    = 4096 // buckets kept before full ones are swept
)

// OpenPolicy configures the "open" design. Zero fields take the defaults.
// The work parameters (MemoryKiB, Passes, Difficulty) must be alike on every
// member; the limits are each member's own.
type OpenPolicy struct {
	// MemoryKiB is Argon2id's memory per evaluation (default 64 MiB).
	MemoryKiB uint32 `json:"memory_kib"`
	// Passes is Argon2id's time parameter (default 1).
	Passes uint32 `json:"passes"`
	// Difficulty is the leading zero bits a ticket needs, 1..32 (default
	// 8): 2^Difficulty evaluations expected per identity per epoch.
	Difficulty int `json:"difficulty"`
	// MaxPerEpoch caps the identities one epoch admits (default 256,
	// at most a document's 4096); beyond it the lowest tickets win.
	MaxPerEpoch int `json:"max_per_epoch"`
	// SourceRate and SourceBurst bound the proofs checked per second for
	// one source address (IPv4 /32, IPv6 /64) of gossip or anti-entropy
	// (defaults 1/s, burst 32). The member's own are not counted.
	SourceRate  float64 `json:"source_rate"`
	SourceBurst int     `json:"source_burst"`
}

func (o *OpenPolicy) setDefaults() {
	if o.MemoryKiB == 0 {
		o.MemoryKiB = DefaultOpenMemoryKiB
	}
	if o.Passes == 0 {
		o.Passes = DefaultOpenPasses
	}
	if o.Difficulty == 0 {
		o.Difficulty = DefaultOpenDifficulty
	}
	if o.MaxPerEpoch == 0 {
		o.MaxPerEpoch = DefaultOpenMaxPerEpoch
	}
	if o.SourceRate == 0 {
		o.SourceRate = DefaultOpenSourceRate
	}
	if o.SourceBurst == 0 {
		o.SourceBurst = DefaultOpenSourceBurst
	}
}

func (o *OpenPolicy) validate() error {
	switch {
	case o.MemoryKiB < 8 || o.MemoryKiB > 4<<20:
		return fmt.Errorf("%w: admission.open.memory_kib %d, want 8..%d", ErrConfig, o.MemoryKiB, 4<<20)
	case o.Passes < 1 || o.Passes > 64:
		return fmt.Errorf("%w: admission.open.passes %d, want 1..64", ErrConfig, o.Passes)
	case o.Difficulty < 1 || o.Difficulty > maxDifficulty:
		return fmt.Errorf("%w: admission.open.difficulty %d, want 1..%d", ErrConfig, o.Difficulty, maxDifficulty)
	case o.MaxPerEpoch < 1 || o.MaxPerEpoch > interfaces.MaxDocumentNodes:
		return fmt.Errorf("%w: admission.open.max_per_epoch %d, want 1..%d", ErrConfig, o.MaxPerEpoch, interfaces.MaxDocumentNodes)
	case !(o.SourceRate > 0) || o.SourceRate > 1e6:
		return fmt.Errorf("%w: admission.open.source_rate %v, want > 0", ErrConfig, o.SourceRate)
	case o.SourceBurst < 1:
		return fmt.Errorf("%w: admission.open.source_burst %d, want ≥ 1", ErrConfig, o.SourceBurst)
	}
	return nil
}

// ticket is one Argon2id evaluation of the admission puzzle.
func (o *OpenPolicy) ticket(network string, e uint64, identity []byte, nonce uint64) []byte {
	h := sha256.New()
	h.Write([]byte(admissionSaltLabel))
	h.Write([]byte{byte(len(network))})
	h.Write([]byte(network))
	h.Write(binary.BigEndian.AppendUint64(nil, e))
	h.Write(identity)
	return argon2.IDKey(binary.BigEndian.AppendUint64(nil, nonce), h.Sum(nil), o.Passes, o.MemoryKiB, 1, 32)
}

func leadingZeroBits(b []byte) int {
	n := 0
	for _, x := range b {
		if x != 0 {
			return n + bits.LeadingZeros8(x)
		}
		n += 8
	}
	return n
}

// Solve finds the admission proof of identity for epoch e on network: the
// first nonce from 0 up whose ticket meets the difficulty. It returns the
// 8-byte proof and its ticket, or ctx's error. Deterministic, so a member
// restarted in the same epoch finds the same proof.
func (o *OpenPolicy) Solve(ctx context.Context, network string, e uint64, identity []byte) (proof, ticket []byte, err error) {
	for nonce := uint64(0); ; nonce++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		t := o.ticket(network, e, identity, nonce)
		if leadingZeroBits(t) >= o.Difficulty {
			return binary.BigEndian.AppendUint64(nil, nonce), t, nil
		}
	}
}

type solveKey struct {
	epoch    uint64
	identity string
}

type solveJob struct {
	done   chan struct{}
	cancel context.CancelFunc
	start  time.Time
	proof  []byte
	err    error
}

type openPolicy struct {
	cfg     OpenPolicy
	network string
	verify  chan struct{} // one verification at a time: memory stays at one MemoryKiB
	solving chan struct{} // one solver at a time: the node's cores are for packets
	sources *sourceLimiter

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	jobs   map[solveKey]*solveJob
}

func newOpenPolicy(cfg *Config, _ epoch.Clock) (policy, error) {
	ctx, cancel := context.WithCancel(context.Background())
	o := cfg.Admission.Open
	return &openPolicy{
		cfg: o, network: cfg.Network,
		verify: make(chan struct{}, 1), solving: make(chan struct{}, 1),
		sources: newSourceLimiter(o.SourceRate, o.SourceBurst, time.Now),
		ctx:     ctx, cancel: cancel, jobs: map[solveKey]*solveJob{},
	}, nil
}

func (*openPolicy) kind() byte      { return kindOpen }
func (p *openPolicy) capacity() int { return p.cfg.MaxPerEpoch }

// prove starts (once per identity and epoch) the search for this member's
// proof in the background and waits for it until ctx ends; a later call
// picks up the result. The host's call deadline is shorter than a search
// may be at real difficulties.
func (p *openPolicy) prove(ctx context.Context, sd *interfaces.SignedDescriptor) ([]byte, error) {
	d := &sd.Descriptor
	key := solveKey{d.Epoch, string(d.Identity)}
	p.mu.Lock()
	j := p.jobs[key]
	if j == nil {
		jctx, cancel := context.WithCancel(p.ctx)
		j = &solveJob{done: make(chan struct{}), cancel: cancel, start: time.Now()}
		p.jobs[key] = j
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer close(j.done)
			select {
			case p.solving <- struct{}{}:
				defer func() { <-p.solving }()
			case <-jctx.Done():
				j.err = jctx.Err()
				return
			}
			j.proof, _, j.err = p.cfg.Solve(jctx, d.Network, d.Epoch, d.Identity)
		}()
	}
	p.mu.Unlock()
	select {
	case <-j.done:
		if j.err != nil {
			return nil, fmt.Errorf("admission proof for epoch %d: %w", d.Epoch, j.err)
		}
		return j.proof, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("admission proof for epoch %d still being computed (%v so far, 2^%d Argon2id evaluations of %d KiB expected): %w",
			d.Epoch, time.Since(j.start).Round(time.Millisecond), p.cfg.Difficulty, p.cfg.MemoryKiB, ctx.Err())
	}
}

func (p *openPolicy) check(ctx context.Context, source string, sd *interfaces.SignedDescriptor, proof []byte) ([]byte, error) {
	if len(proof) != 8 {
		return nil, fmt.Errorf("%w: proof of work of %d bytes, want 8", ErrNotAdmitted, len(proof))
	}
	if source != "" && !p.sources.allow(source) {
		return nil, fmt.Errorf("%w: %s", errThrottled, source)
	}
	select {
	case p.verify <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", errThrottled, ctx.Err())
	}
	d := &sd.Descriptor
	t := p.cfg.ticket(d.Network, d.Epoch, d.Identity, binary.BigEndian.Uint64(proof))
	<-p.verify
	if z := leadingZeroBits(t); z < p.cfg.Difficulty {
		return nil, fmt.Errorf("%w: proof of work with %d leading zero bits, need %d", ErrNotAdmitted, z, p.cfg.Difficulty)
	}
	return t, nil
}

// restore takes the ticket stored beside the proof instead of spending an
// evaluation per record at start (768 of them, a minute of CPU, for three
// full epochs at the defaults). Only a ticket that meets the difficulty is
// taken; anything else is checked as if it came from the network.
func (p *openPolicy) restore(ctx context.Context, sd *interfaces.SignedDescriptor, proof, rank []byte) ([]byte, error) {
	if len(proof) == 8 && len(rank) == 32 && leadingZeroBits(rank) >= p.cfg.Difficulty {
		return rank, nil
	}
	return p.check(ctx, "", sd, proof)
}

func (p *openPolicy) forget(oldest uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, j := range p.jobs {
		if k.epoch < oldest {
			j.cancel()
			delete(p.jobs, k)
		}
	}
}

func (p *openPolicy) close() {
	p.cancel()
	p.wg.Wait()
}

// sourceLimiter is a token bucket per source address.
type sourceLimiter struct {
	mu    sync.Mutex
	now   func() time.Time
	table *ratelimit.Table[string]
}

func newSourceLimiter(rate float64, burst int, now func() time.Time) *sourceLimiter {
	return &sourceLimiter{now: now, table: ratelimit.New[string](rate, float64(burst), maxSources)}
}

func (l *sourceLimiter) allow(src string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.table.Take(src, l.now())
}

// sourceKey is the unit a source is limited by: an IPv4 address, or an
// IPv6 /64 (what one host is usually given).
func sourceKey(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
