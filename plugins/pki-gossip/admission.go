package pkigossip

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces"
)

// Admission decides who may have a descriptor in a document. It is one
// design to swap, chosen in the plugin's config; every member of a network
// must be configured alike (as with Params), or each refuses what the
// others admit. docs/SPEC.md ("Gossip PKI", "Admission") specifies the
// designs; README.md gives their costs.
type Admission struct {
	// Policy names the design: "endorsed", "open" or "none". The JSON
	// config must name one; a Config built in Go with Policy "" means
	// "none" (tests and in-process harnesses).
	Policy string `json:"policy"`
	// Endorsed configures the "endorsed" design.
	Endorsed EndorsedPolicy `json:"endorsed"`
	// Open configures the "open" design.
	Open OpenPolicy `json:"open"`
}

// ErrNotAdmitted: a descriptor's admission proof does not satisfy the
// network's policy (no, too few or forged endorsements; a wrong proof of
// work). Members neither store nor relay it; Publish's error wraps it and
// interfaces.ErrInvalidArgument.
var ErrNotAdmitted = errors.New("pki-gossip: not admitted")

// errThrottled: a proof was not checked because its source exceeded its
// rate. Not the sender's fault as such (an honest member relays others'
// descriptors): the message is ignored, and anti-entropy offers it again.
var errThrottled = errors.New("pki-gossip: source over its admission rate")

// policy is one admission design. A new design is a type implementing it,
// a byte for its messages and an entry in policies.
type policy interface {
	// kind is the design's byte in every gossip message.
	kind() byte
	// prove returns the proof this member attaches to its own descriptor.
	// It may take long (a proof of work); it returns when ctx ends and may
	// be called again for the same descriptor.
	prove(ctx context.Context, sd *interfaces.SignedDescriptor) ([]byte, error)
	// check verifies the proof of a descriptor that came from source (an
	// address; "" for the member itself and its own disk, which no rate
	// limit applies to). It returns the descriptor's rank for designs that
	// cap an epoch (lower ranks win a full epoch; nil: unranked). Errors
	// wrap ErrNotAdmitted (the message is rejected) or errThrottled (it is
	// ignored).
	check(ctx context.Context, source string, sd *interfaces.SignedDescriptor, proof []byte) (rank []byte, err error)
	// restore re-admits a descriptor from the member's own state_dir, where
	// it was stored with rank after a check. Designs whose check is costly
	// may trust the stored rank (the directory is the member's own, 0700);
	// the others check again.
	restore(ctx context.Context, sd *interfaces.SignedDescriptor, proof, rank []byte) ([]byte, error)
	// capacity is how many identities one epoch may hold under this
	// design; 0 leaves only the document's own limit.
	capacity() int
	// forget drops what the design keeps for epochs before oldest.
	forget(oldest uint64)
	// close stops the design's background work.
	close()
}

// Message kinds: the first byte of every gossip message.
const (
	kindNone     byte = 0
	kindEndorsed byte = 1
	kindOpen     byte = 2
)

// policies maps a policy name to its constructor.
var policies = map[string]func(cfg *Config, clock epoch.Clock) (policy, error){
	"none":     func(*Config, epoch.Clock) (policy, error) { return nonePolicy{}, nil },
	"endorsed": newEndorsedPolicy,
	"open":     newOpenPolicy,
}

func policyNames() string {
	names := make([]string, 0, len(policies))
	for n := range policies {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func (a *Admission) setDefaults() {
	if a.Policy == "" {
		a.Policy = "none"
	}
	switch a.Policy {
	case "endorsed":
		if a.Endorsed.Threshold == 0 {
			a.Endorsed.Threshold = 1
		}
	case "open":
		a.Open.setDefaults()
	}
}

// validate checks the chosen design's settings (only those: a researcher
// may leave another design's section in the file).
func (a *Admission) validate(network string) error {
	switch a.Policy {
	case "endorsed":
		return a.Endorsed.validate(network)
	case "open":
		return a.Open.validate()
	case "none":
		return nil
	}
	return fmt.Errorf("%w: admission policy %q, want one of %s", ErrConfig, a.Policy, policyNames())
}

// nonePolicy admits every validly signed descriptor: the baseline with no
// price, kept so the designs can be compared with nothing at all.
type nonePolicy struct{}

func (nonePolicy) kind() byte { return kindNone }
func (nonePolicy) prove(context.Context, *interfaces.SignedDescriptor) ([]byte, error) {
	return nil, nil
}
func (nonePolicy) check(_ context.Context, _ string, _ *interfaces.SignedDescriptor, proof []byte) ([]byte, error) {
	if len(proof) != 0 {
		return nil, fmt.Errorf("%w: %d bytes of proof under policy none", ErrNotAdmitted, len(proof))
	}
	return nil, nil
}
func (p nonePolicy) restore(ctx context.Context, sd *interfaces.SignedDescriptor, proof, _ []byte) ([]byte, error) {
	return p.check(ctx, "", sd, proof)
}
func (nonePolicy) capacity() int { return 0 }
func (nonePolicy) forget(uint64) {}
func (nonePolicy) close()        {}

// A gossip message is a descriptor with its admission proof:
//
//	kind u8 ‖ bytes16 signed descriptor ‖ bytes16 proof
//
// It is what travels on the topic, in anti-entropy (op 4) and in state_dir.
// The descriptor alone is what documents hold and hashes cover.
const (
	maxProofLen   = 2048
	maxMessageLen = 1 + 2 + interfaces.MaxDescriptorSize + 2 + maxProofLen
)

func encodeMessage(kind byte, desc, proof []byte) []byte {
	b := make([]byte, 0, 5+len(desc)+len(proof))
	b = append(b, kind)
	b = binary.BigEndian.AppendUint16(b, uint16(len(desc)))
	b = append(b, desc...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(proof)))
	return append(b, proof...)
}

// parseMessage splits a gossip message strictly: every length checked, no
// trailing bytes. The descriptor is not yet verified.
func parseMessage(b []byte) (kind byte, desc, proof []byte, err error) {
	if len(b) > maxMessageLen {
		return 0, nil, nil, fmt.Errorf("%w: message of %d bytes", interfaces.ErrInvalidArgument, len(b))
	}
	if len(b) < 5 {
		return 0, nil, nil, fmt.Errorf("%w: message of %d bytes", interfaces.ErrInvalidArgument, len(b))
	}
	kind, b = b[0], b[1:]
	n := int(binary.BigEndian.Uint16(b))
	if n > interfaces.MaxDescriptorSize || len(b) < 2+n+2 {
		return 0, nil, nil, fmt.Errorf("%w: descriptor length %d", interfaces.ErrInvalidArgument, n)
	}
	desc, b = b[2:2+n], b[2+n:]
	n = int(binary.BigEndian.Uint16(b))
	if n > maxProofLen || len(b) != 2+n {
		return 0, nil, nil, fmt.Errorf("%w: proof length %d in %d bytes", interfaces.ErrInvalidArgument, n, len(b)-2)
	}
	return kind, desc, b[2:], nil
}
