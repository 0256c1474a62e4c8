package interfaces

import (
	"crypto/ed25519"

	"github.com/sottonet/sotto/core/pkidoc"
)

// The PKI's wire objects live in core/pkidoc, which depends on the standard
// library only (clients and the browser build verify documents with it);
// these names re-export them for plugin authors, who import interfaces alone.

type (
	Role             = pkidoc.Role
	Descriptor       = pkidoc.Descriptor
	SignedDescriptor = pkidoc.SignedDescriptor
	NetworkParams    = pkidoc.NetworkParams
	Document         = pkidoc.Document
	Equivocation     = pkidoc.Equivocation
)

const (
	RoleMix      = pkidoc.RoleMix
	RoleProvider = pkidoc.RoleProvider

	MaxNetworkLen     = pkidoc.MaxNetworkLen
	MaxPeerIDLen      = pkidoc.MaxPeerIDLen
	MaxAddrs          = pkidoc.MaxAddrs
	MaxAddrLen        = pkidoc.MaxAddrLen
	MaxAccountingLen  = pkidoc.MaxAccountingLen
	MaxDescriptorSize = pkidoc.MaxDescriptorSize
	SphinxKeyEpochs   = pkidoc.SphinxKeyEpochs
	MaxDocumentNodes  = pkidoc.MaxDocumentNodes
	MaxLayers         = pkidoc.MaxLayers
	MaxDocumentSize   = pkidoc.MaxDocumentSize
)

var (
	// ErrMalformed: bytes that are not a canonical PKI object.
	ErrMalformed = pkidoc.ErrMalformed
	// ErrBadSignature: a signature does not verify.
	ErrBadSignature = pkidoc.ErrBadSignature
	// ErrEpochWindow: a descriptor for an epoch a member does not accept now.
	ErrEpochWindow = pkidoc.ErrEpochWindow
)

// SignDescriptor encodes d and signs it with key (see pkidoc.SignDescriptor).
func SignDescriptor(d *Descriptor, key ed25519.PrivateKey) (*SignedDescriptor, error) {
	return pkidoc.SignDescriptor(d, key)
}

// ParseSignedDescriptor decodes and verifies a descriptor (see pkidoc).
func ParseSignedDescriptor(raw []byte) (*SignedDescriptor, error) {
	return pkidoc.ParseSignedDescriptor(raw)
}

// NewDocument builds a document from descriptors in any order (see pkidoc).
func NewDocument(network string, epoch uint64, params NetworkParams, nodes []*SignedDescriptor) (*Document, error) {
	return pkidoc.NewDocument(network, epoch, params, nodes)
}

// ParseDocument decodes, verifies and checks a document (see pkidoc).
func ParseDocument(b []byte) (*Document, error) { return pkidoc.ParseDocument(b) }

// CheckEpochWindow reports whether a descriptor for descEpoch may be accepted
// when the current epoch is current (see pkidoc).
func CheckEpochWindow(descEpoch, current, ahead uint64) error {
	return pkidoc.CheckEpochWindow(descEpoch, current, ahead)
}

// PeerIDOf is the binary libp2p peer ID a descriptor of identity must
// carry (see pkidoc.PeerIDOf).
func PeerIDOf(identity ed25519.PublicKey) []byte { return pkidoc.PeerIDOf(identity) }
