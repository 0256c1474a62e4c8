package pkigossip

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces"
)

// The "endorsed" design: an identity is admitted for an epoch when at least
// Threshold of the network's operator trust roots have signed it in (for
// its role, until an expiry that covers the whole epoch). Members carry
// their own endorsements in their config and attach them to every
// descriptor they publish.
const (
	endorsementLabel = "sotto pki endorsement v1\x00"
	endorsementLen   = ed25519.PublicKeySize + 8 + ed25519.SignatureSize // root ‖ not_after ‖ signature
	maxEndorsements  = 16                                                // per proof: more roots than any k needs
	maxRoots         = 64
)

// EndorsedPolicy configures the "endorsed" design.
type EndorsedPolicy struct {
	// Roots are the operator trust roots: Ed25519 public keys, base64 in
	// JSON. Alike on every member.
	Roots [][]byte `json:"roots"`
	// Threshold is k: how many distinct roots must have endorsed an
	// identity. Default 1; at most the number of roots and 16.
	Threshold int `json:"threshold"`
	// Endorsements are this member's own (for the identity of the node it
	// serves), attached to every descriptor it publishes.
	Endorsements []Endorsement `json:"endorsements"`
}

// Endorsement is a trust root's signature admitting one identity in one
// role on one network until NotAfter. It admits descriptors for every
// epoch that ends at or before NotAfter.
type Endorsement struct {
	Root      ed25519.PublicKey
	Network   string
	Identity  ed25519.PublicKey
	Role      interfaces.Role
	NotAfter  time.Time // whole seconds; Endorse truncates
	Signature []byte
}

// Endorse signs identity into network, in role, until notAfter (truncated
// to the second), with the trust root's private key.
func Endorse(root ed25519.PrivateKey, network string, identity ed25519.PublicKey, role interfaces.Role, notAfter time.Time) Endorsement {
	e := Endorsement{
		Root: root.Public().(ed25519.PublicKey), Network: network, Identity: identity,
		Role: role, NotAfter: time.Unix(notAfter.Unix(), 0).UTC(),
	}
	e.Signature = ed25519.Sign(root, endorsementMessage(network, identity, role, uint64(e.NotAfter.Unix())))
	return e
}

func endorsementMessage(network string, identity []byte, role interfaces.Role, notAfter uint64) []byte {
	m := make([]byte, 0, len(endorsementLabel)+1+len(network)+len(identity)+1+8)
	m = append(m, endorsementLabel...)
	m = append(m, byte(len(network)))
	m = append(m, network...)
	m = append(m, identity...)
	m = append(m, byte(role))
	return binary.BigEndian.AppendUint64(m, notAfter)
}

// Verify checks the endorsement's fields and signature (not its expiry).
func (e *Endorsement) Verify() error {
	switch {
	case len(e.Root) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: endorsement root of %d bytes", ErrNotAdmitted, len(e.Root))
	case len(e.Identity) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: endorsed identity of %d bytes", ErrNotAdmitted, len(e.Identity))
	case e.Network == "" || len(e.Network) > interfaces.MaxNetworkLen:
		return fmt.Errorf("%w: endorsement for network %q", ErrNotAdmitted, e.Network)
	case e.Role != interfaces.RoleMix && e.Role != interfaces.RoleProvider:
		return fmt.Errorf("%w: endorsement for %v", ErrNotAdmitted, e.Role)
	case e.NotAfter.Unix() < 0 || e.NotAfter.Nanosecond() != 0:
		return fmt.Errorf("%w: endorsement expiry %v is not a whole second after 1970", ErrNotAdmitted, e.NotAfter)
	}
	if !ed25519.Verify(e.Root, endorsementMessage(e.Network, e.Identity, e.Role, uint64(e.NotAfter.Unix())), e.Signature) {
		return fmt.Errorf("%w: endorsement signature does not verify", ErrNotAdmitted)
	}
	return nil
}

type endorsementJSON struct {
	Root      []byte    `json:"root"`
	Network   string    `json:"network"`
	Identity  []byte    `json:"identity"`
	Role      string    `json:"role"`
	NotAfter  time.Time `json:"not_after"`
	Signature []byte    `json:"signature"`
}

// MarshalJSON writes keys base64 and the role as "mix" or "provider".
func (e Endorsement) MarshalJSON() ([]byte, error) {
	return json.Marshal(endorsementJSON{e.Root, e.Network, e.Identity, e.Role.String(), e.NotAfter, e.Signature})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *Endorsement) UnmarshalJSON(b []byte) error {
	var j endorsementJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var role interfaces.Role
	switch j.Role {
	case "mix":
		role = interfaces.RoleMix
	case "provider":
		role = interfaces.RoleProvider
	default:
		return fmt.Errorf("endorsement role %q, want mix or provider", j.Role)
	}
	*e = Endorsement{Root: j.Root, Network: j.Network, Identity: j.Identity, Role: role, NotAfter: j.NotAfter, Signature: j.Signature}
	return nil
}

func (p *EndorsedPolicy) validate(network string) error {
	if len(p.Roots) == 0 || len(p.Roots) > maxRoots {
		return fmt.Errorf("%w: admission.endorsed: %d trust roots, want 1..%d", ErrConfig, len(p.Roots), maxRoots)
	}
	for i, r := range p.Roots {
		if len(r) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: admission.endorsed: root %d of %d bytes, want an Ed25519 public key", ErrConfig, i, len(r))
		}
		if slices.ContainsFunc(p.Roots[:i], func(o []byte) bool { return bytes.Equal(o, r) }) {
			return fmt.Errorf("%w: admission.endorsed: root %d listed twice", ErrConfig, i)
		}
	}
	if p.Threshold < 1 || p.Threshold > len(p.Roots) || p.Threshold > maxEndorsements {
		return fmt.Errorf("%w: admission.endorsed: threshold %d of %d roots (at most %d)", ErrConfig, p.Threshold, len(p.Roots), maxEndorsements)
	}
	for i := range p.Endorsements {
		e := &p.Endorsements[i]
		if err := e.Verify(); err != nil {
			return fmt.Errorf("%w: admission.endorsed: endorsement %d: %w", ErrConfig, i, err)
		}
		if e.Network != network {
			return fmt.Errorf("%w: admission.endorsed: endorsement %d is for network %q", ErrConfig, i, e.Network)
		}
		if !p.trusts(e.Root) {
			return fmt.Errorf("%w: admission.endorsed: endorsement %d is signed by a root not in roots", ErrConfig, i)
		}
	}
	return nil
}

func (p *EndorsedPolicy) trusts(root []byte) bool {
	return slices.ContainsFunc(p.Roots, func(r []byte) bool { return bytes.Equal(r, root) })
}

type endorsedPolicy struct {
	cfg     EndorsedPolicy
	network string
	clock   epoch.Clock
}

func newEndorsedPolicy(cfg *Config, clock epoch.Clock) (policy, error) {
	return &endorsedPolicy{cfg: cfg.Admission.Endorsed, network: cfg.Network, clock: clock}, nil
}

func (*endorsedPolicy) kind() byte    { return kindEndorsed }
func (*endorsedPolicy) capacity() int { return 0 }
func (*endorsedPolicy) forget(uint64) {}
func (*endorsedPolicy) close()        {}

// covers reports whether an expiry (Unix seconds) covers the whole of
// epoch e. Expiry is judged against the epoch, not the member's clock, so
// every member decides alike whatever the hour it receives a descriptor.
func (p *endorsedPolicy) covers(notAfter uint64, e uint64) bool {
	return notAfter <= math.MaxInt64 && !p.clock.End(e).After(time.Unix(int64(notAfter), 0))
}

func (p *endorsedPolicy) restore(ctx context.Context, sd *interfaces.SignedDescriptor, proof, _ []byte) ([]byte, error) {
	return p.check(ctx, "", sd, proof)
}

func (p *endorsedPolicy) prove(_ context.Context, sd *interfaces.SignedDescriptor) ([]byte, error) {
	d := &sd.Descriptor
	var chosen []*Endorsement
	for i := range p.cfg.Endorsements {
		e := &p.cfg.Endorsements[i]
		if bytes.Equal(e.Identity, d.Identity) && e.Role == d.Role && e.Network == d.Network &&
			p.covers(uint64(e.NotAfter.Unix()), d.Epoch) &&
			!slices.ContainsFunc(chosen, func(c *Endorsement) bool { return bytes.Equal(c.Root, e.Root) }) {
			chosen = append(chosen, e)
		}
	}
	if len(chosen) < p.cfg.Threshold {
		return nil, fmt.Errorf("%w: this member holds %d endorsements covering identity %x as %v for epoch %d (ending %v); the network needs %d of %d roots",
			ErrNotAdmitted, len(chosen), d.Identity[:8], d.Role, d.Epoch, p.clock.End(d.Epoch).UTC(), p.cfg.Threshold, len(p.cfg.Roots))
	}
	chosen = chosen[:min(len(chosen), maxEndorsements)]
	proof := []byte{byte(len(chosen))}
	for _, e := range chosen {
		proof = append(proof, e.Root...)
		proof = binary.BigEndian.AppendUint64(proof, uint64(e.NotAfter.Unix()))
		proof = append(proof, e.Signature...)
	}
	return proof, nil
}

// check counts the distinct trusted roots whose endorsement verifies and
// covers the descriptor's epoch. Endorsements by roots this member does not
// trust are skipped; a trusted root's endorsement that does not verify is a
// forgery and fails the whole message.
func (p *endorsedPolicy) check(_ context.Context, _ string, sd *interfaces.SignedDescriptor, proof []byte) ([]byte, error) {
	if len(proof) < 1 {
		return nil, fmt.Errorf("%w: no endorsement", ErrNotAdmitted)
	}
	n := int(proof[0])
	if n == 0 || n > maxEndorsements || len(proof) != 1+n*endorsementLen {
		return nil, fmt.Errorf("%w: %d endorsements in %d bytes", ErrNotAdmitted, n, len(proof))
	}
	d := &sd.Descriptor
	var counted [][]byte
	expired := 0
	for i := range n {
		item := proof[1+i*endorsementLen : 1+(i+1)*endorsementLen]
		root := item[:ed25519.PublicKeySize]
		notAfter := binary.BigEndian.Uint64(item[ed25519.PublicKeySize:])
		sig := item[ed25519.PublicKeySize+8:]
		if !p.cfg.trusts(root) || slices.ContainsFunc(counted, func(c []byte) bool { return bytes.Equal(c, root) }) {
			continue
		}
		if !ed25519.Verify(root, endorsementMessage(d.Network, d.Identity, d.Role, notAfter), sig) {
			return nil, fmt.Errorf("%w: endorsement %d by trusted root %x does not verify", ErrNotAdmitted, i, root[:8])
		}
		if !p.covers(notAfter, d.Epoch) {
			expired++
			continue
		}
		counted = append(counted, root)
	}
	if len(counted) < p.cfg.Threshold {
		return nil, fmt.Errorf("%w: %d valid endorsements (%d expired) for epoch %d, need %d", ErrNotAdmitted, len(counted), expired, d.Epoch, p.cfg.Threshold)
	}
	return nil, nil
}
