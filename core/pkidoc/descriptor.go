package pkidoc

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Limits of the descriptor encoding. A decoder refuses anything larger, so a
// member never buffers more than MaxDescriptorSize bytes for one descriptor.
const (
	MaxNetworkLen      = 64
	MaxPeerIDLen       = 64
	MaxAddrs           = 8
	MaxAddrLen         = 256
	MaxAccountingLen   = 1024
	MaxDescriptorSize  = 4096
	SphinxKeyEpochs    = 3 // a descriptor carries keys for its epoch and the next two
	descriptorVersion  = 1
	descriptorSigLabel = "sotto pki descriptor v1\x00"
)

// ErrMalformed: bytes from the network or a file do not decode as a
// canonical Sotto PKI object. It wraps ErrInvalidArgument.
var ErrMalformed = fmt.Errorf("pki: malformed encoding: %w", ErrInvalidArgument)

// ErrBadSignature: a signature does not verify. It wraps ErrInvalidArgument.
var ErrBadSignature = fmt.Errorf("pki: bad signature: %w", ErrInvalidArgument)

// Role says what a node does in the network.
type Role uint8

const (
	RoleMix      Role = 1 // a mix in one of the layers
	RoleProvider Role = 2 // an edge node: gateway for clients, mailboxes
)

func (r Role) String() string {
	switch r {
	case RoleMix:
		return "mix"
	case RoleProvider:
		return "provider"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Descriptor is what a node says about itself for one epoch. Its layer is not
// in it: the document assigns layers deterministically (Document.Layers) so
// that a node cannot pick the layer it would most like to observe.
type Descriptor struct {
	Network  string            // network name, so descriptors never cross networks
	Epoch    uint64            // the epoch this descriptor is for
	Identity ed25519.PublicKey // 32 bytes; signs the descriptor
	PeerID   []byte            // libp2p peer ID, binary form
	Addrs    [][]byte          // libp2p multiaddrs, binary form, in the node's order of preference
	Role     Role
	// SphinxKeys[i] is the X25519 public key for epoch Epoch+i.
	SphinxKeys [SphinxKeyEpochs][32]byte
	Accounting []byte // opaque to the PKI; read by the accounting plugin
}

// SignedDescriptor is a descriptor with its canonical encoding and the
// identity's signature over it. Raw is what travels and what is hashed.
type SignedDescriptor struct {
	Descriptor Descriptor
	Raw        []byte // canonical encoding: body || 64-byte signature
}

// Validate checks a descriptor's fields against the encoding's limits.
func (d *Descriptor) Validate() error {
	switch {
	case d.Network == "" || len(d.Network) > MaxNetworkLen:
		return fmt.Errorf("%w: network name of %d bytes", ErrMalformed, len(d.Network))
	case len(d.Identity) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: identity of %d bytes", ErrMalformed, len(d.Identity))
	case len(d.PeerID) == 0 || len(d.PeerID) > MaxPeerIDLen:
		return fmt.Errorf("%w: peer ID of %d bytes", ErrMalformed, len(d.PeerID))
	case len(d.Addrs) == 0 || len(d.Addrs) > MaxAddrs:
		return fmt.Errorf("%w: %d addresses", ErrMalformed, len(d.Addrs))
	case d.Role != RoleMix && d.Role != RoleProvider:
		return fmt.Errorf("%w: unknown %v", ErrMalformed, d.Role)
	case len(d.Accounting) > MaxAccountingLen:
		return fmt.Errorf("%w: accounting info of %d bytes", ErrMalformed, len(d.Accounting))
	}
	if !bytes.Equal(d.PeerID, PeerIDOf(d.Identity)) {
		return fmt.Errorf("%w: peer ID is not the libp2p peer ID of the identity", ErrMalformed)
	}
	for i, a := range d.Addrs {
		if len(a) == 0 || len(a) > MaxAddrLen {
			return fmt.Errorf("%w: address %d of %d bytes", ErrMalformed, i, len(a))
		}
		if err := checkMultiaddr(a); err != nil {
			return fmt.Errorf("%w: address %d: %v", ErrMalformed, i, err)
		}
	}
	return nil
}

func (d *Descriptor) encodeBody() ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	var w pkiWriter
	w.u8(descriptorVersion)
	w.bytes8([]byte(d.Network))
	w.u64(d.Epoch)
	w.raw(d.Identity)
	w.bytes8(d.PeerID)
	w.u8(uint8(len(d.Addrs)))
	for _, a := range d.Addrs {
		w.bytes16(a)
	}
	w.u8(uint8(d.Role))
	for _, k := range d.SphinxKeys {
		w.raw(k[:])
	}
	w.bytes16(d.Accounting)
	return w.b, nil
}

// SignDescriptor encodes d canonically and signs it with the identity's
// private key, which must match d.Identity.
func SignDescriptor(d *Descriptor, key ed25519.PrivateKey) (*SignedDescriptor, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: private key of %d bytes", ErrInvalidArgument, len(key))
	}
	if !bytes.Equal(key.Public().(ed25519.PublicKey), d.Identity) {
		return nil, fmt.Errorf("%w: signing key does not match the descriptor's identity", ErrInvalidArgument)
	}
	body, err := d.encodeBody()
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(key, append([]byte(descriptorSigLabel), body...))
	raw := append(body, sig...)
	if len(raw) > MaxDescriptorSize {
		return nil, fmt.Errorf("%w: descriptor of %d bytes exceeds %d", ErrMalformed, len(raw), MaxDescriptorSize)
	}
	out := &SignedDescriptor{Raw: raw}
	out.Descriptor, _, _ = decodeDescriptorBody(body) // cannot fail: we just encoded it
	return out, nil
}

// ParseSignedDescriptor decodes and verifies a signed descriptor. It accepts
// only the canonical encoding (re-encoding gives the same bytes), refuses
// trailing bytes and anything over MaxDescriptorSize, and never panics.
// It checks the signature but not the epoch window: that depends on the
// caller's clock (see CheckEpochWindow).
func ParseSignedDescriptor(raw []byte) (*SignedDescriptor, error) {
	if len(raw) > MaxDescriptorSize {
		return nil, fmt.Errorf("%w: descriptor of %d bytes exceeds %d", ErrMalformed, len(raw), MaxDescriptorSize)
	}
	if len(raw) < ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: descriptor of %d bytes is too short", ErrMalformed, len(raw))
	}
	body := raw[:len(raw)-ed25519.SignatureSize]
	d, n, err := decodeDescriptorBody(body)
	if err != nil {
		return nil, err
	}
	if n != len(body) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(body)-n)
	}
	sd := &SignedDescriptor{Descriptor: d, Raw: bytes.Clone(raw)}
	if err := sd.Verify(); err != nil {
		return nil, err
	}
	return sd, nil
}

// Verify checks the signature over Raw and that Raw encodes Descriptor.
func (s *SignedDescriptor) Verify() error {
	if s == nil || len(s.Raw) < ed25519.SignatureSize {
		return fmt.Errorf("%w: empty descriptor", ErrMalformed)
	}
	body := s.Raw[:len(s.Raw)-ed25519.SignatureSize]
	want, err := s.Descriptor.encodeBody()
	if err != nil {
		return err
	}
	if !bytes.Equal(want, body) {
		return fmt.Errorf("%w: descriptor fields do not match their encoding", ErrMalformed)
	}
	msg := append([]byte(descriptorSigLabel), body...)
	if !ed25519.Verify(s.Descriptor.Identity, msg, s.Raw[len(body):]) {
		return ErrBadSignature
	}
	return nil
}

// ErrEpochWindow: a descriptor is for an epoch too old or too far ahead.
// It wraps ErrInvalidArgument.
var ErrEpochWindow = fmt.Errorf("pki: descriptor outside the epoch window: %w", ErrInvalidArgument)

// CheckEpochWindow accepts a descriptor for the current epoch or up to
// ahead epochs after it, and refuses expired or future ones.
func CheckEpochWindow(descEpoch, current, ahead uint64) error {
	if descEpoch < current {
		return fmt.Errorf("%w: epoch %d has expired (now %d)", ErrEpochWindow, descEpoch, current)
	}
	if descEpoch-current > ahead {
		return fmt.Errorf("%w: epoch %d is too far in the future (now %d)", ErrEpochWindow, descEpoch, current)
	}
	return nil
}

func decodeDescriptorBody(b []byte) (Descriptor, int, error) {
	r := pkiReader{b: b}
	var d Descriptor
	if v := r.u8(); r.err == nil && v != descriptorVersion {
		return d, 0, fmt.Errorf("%w: descriptor version %d, want %d", ErrMalformed, v, descriptorVersion)
	}
	d.Network = string(r.bytes8(MaxNetworkLen))
	d.Epoch = r.u64()
	d.Identity = ed25519.PublicKey(r.fixed(ed25519.PublicKeySize))
	d.PeerID = r.bytes8(MaxPeerIDLen)
	n := int(r.u8())
	if n > MaxAddrs {
		return d, 0, fmt.Errorf("%w: %d addresses", ErrMalformed, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		d.Addrs = append(d.Addrs, r.bytes16(MaxAddrLen))
	}
	d.Role = Role(r.u8())
	for i := range d.SphinxKeys {
		copy(d.SphinxKeys[i][:], r.fixed(32))
	}
	d.Accounting = r.bytes16(MaxAccountingLen)
	if r.err != nil {
		return d, 0, r.err
	}
	if len(d.Accounting) == 0 {
		d.Accounting = nil
	}
	if err := d.Validate(); err != nil {
		return d, 0, err
	}
	return d, r.off, nil
}

// pkiWriter and pkiReader hold the encoding's primitives: big-endian
// integers, byte strings with an 8- or 16-bit length prefix.
type pkiWriter struct{ b []byte }

func (w *pkiWriter) u8(v uint8)       { w.b = append(w.b, v) }
func (w *pkiWriter) u16(v uint16)     { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *pkiWriter) u32(v uint32)     { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *pkiWriter) u64(v uint64)     { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *pkiWriter) f64(v float64)    { w.u64(math.Float64bits(v)) }
func (w *pkiWriter) raw(p []byte)     { w.b = append(w.b, p...) }
func (w *pkiWriter) bytes8(p []byte)  { w.u8(uint8(len(p))); w.raw(p) }
func (w *pkiWriter) bytes16(p []byte) { w.u16(uint16(len(p))); w.raw(p) }
func (w *pkiWriter) bytes32(p []byte) { w.u32(uint32(len(p))); w.raw(p) }

type pkiReader struct {
	b   []byte
	off int
	err error
}

var errShort = errors.New("truncated")

func (r *pkiReader) fixed(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = fmt.Errorf("%w: %w at offset %d", ErrMalformed, errShort, r.off)
		return nil
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return bytes.Clone(p)
}

func (r *pkiReader) u8() uint8 {
	p := r.fixed(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (r *pkiReader) u16() uint16 {
	p := r.fixed(2)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint16(p)
}

func (r *pkiReader) u32() uint32 {
	p := r.fixed(4)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint32(p)
}

func (r *pkiReader) u64() uint64 {
	p := r.fixed(8)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint64(p)
}

func (r *pkiReader) f64() float64 { return math.Float64frombits(r.u64()) }

func (r *pkiReader) limited(n, max int) []byte {
	if r.err == nil && n > max {
		r.err = fmt.Errorf("%w: field of %d bytes exceeds %d at offset %d", ErrMalformed, n, max, r.off)
	}
	return r.fixed(n)
}

func (r *pkiReader) bytes8(max int) []byte  { return r.limited(int(r.u8()), max) }
func (r *pkiReader) bytes16(max int) []byte { return r.limited(int(r.u16()), max) }
func (r *pkiReader) bytes32(max int) []byte { return r.limited(int(r.u32()), max) }

// SphinxKey returns the node's X25519 public key for epoch e, if this
// descriptor carries one (e within Epoch .. Epoch+SphinxKeyEpochs-1).
// Senders use the key of the epoch they build a packet in; see core/epoch
// for how long a mix accepts it.
func (d *Descriptor) SphinxKey(e uint64) ([32]byte, bool) {
	if e < d.Epoch || e-d.Epoch >= SphinxKeyEpochs {
		return [32]byte{}, false
	}
	return d.SphinxKeys[e-d.Epoch], true
}

// Equivocation is proof that one identity signed two different descriptors
// for one epoch: anyone can check both signatures. A and B are ordered by
// their encodings so that every member holds the same evidence value.
type Equivocation struct {
	A, B *SignedDescriptor
}

// Verify checks that e really is evidence: both descriptors verify, name
// the same identity and epoch, and differ.
func (e Equivocation) Verify() error {
	if e.A == nil || e.B == nil {
		return errors.New("pki: evidence with a missing descriptor")
	}
	if err := e.A.Verify(); err != nil {
		return err
	}
	if err := e.B.Verify(); err != nil {
		return err
	}
	if string(e.A.Descriptor.Identity) != string(e.B.Descriptor.Identity) || e.A.Descriptor.Epoch != e.B.Descriptor.Epoch {
		return errors.New("pki: evidence descriptors name different identities or epochs")
	}
	if string(e.A.Raw) == string(e.B.Raw) {
		return errors.New("pki: evidence descriptors are identical")
	}
	return nil
}
