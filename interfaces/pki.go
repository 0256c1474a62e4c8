package interfaces

import (
	"context"
	"errors"
)

// PKI is the PKI plugin kind: it learns signed node descriptors and answers,
// per epoch, with the document every client and node routes by. Two designs
// implement it in this tree: a gossip protocol (plugins/pki-gossip) and an
// operator-signed file (plugins/pki-static). Implementations must be safe for
// concurrent use. The wire formats are in package core/pkidoc, specified in
// docs/SPEC.md, section "PKI".
type PKI interface {
	// Publish hands the PKI this node's signed descriptor for one epoch, to
	// be spread to the other members. The descriptor is verified first
	// (signature, network, epoch window, limits); a bad one gives an error
	// wrapping ErrInvalidArgument. Idempotent: publishing the same bytes
	// again is not an error, and implementations may re-send them to heal
	// lost gossip. Publishing a different descriptor for the same identity
	// and epoch is equivocation: it is refused with ErrEquivocation and
	// becomes evidence against that identity.
	Publish(ctx context.Context, req *PublishRequest) (*PublishResponse, error)
	// Document returns the document for one epoch. Before the PKI holds one
	// for that epoch it returns an error wrapping ErrNotFound ("no document
	// yet"); callers retry. Repeated calls for a closed epoch return the same
	// document; for an epoch still being assembled the document may grow
	// until the epoch starts, and its Hash tells views apart.
	Document(ctx context.Context, req *DocumentRequest) (*DocumentResponse, error)
	// Evidence returns the equivocations the PKI has seen for one epoch:
	// pairs of different descriptors signed by one identity. An epoch with
	// none gives an empty list, not an error. Read-only.
	Evidence(ctx context.Context, req *EvidenceRequest) (*EvidenceResponse, error)
}

// ErrEquivocation: an identity signed two different descriptors for one
// epoch. The PKI keeps both as evidence and excludes the identity.
var ErrEquivocation = errors.New("equivocation")

// PublishRequest carries one signed descriptor.
type PublishRequest struct{ Descriptor *SignedDescriptor }

// PublishResponse is empty; success means the descriptor was accepted.
type PublishResponse struct{}

// DocumentRequest names an epoch.
type DocumentRequest struct{ Epoch uint64 }

// DocumentResponse carries the document and its SHA-256 hash (of the
// canonical encoding; the receiver recomputes it, never trusts it).
type DocumentResponse struct {
	Document *Document
	Hash     [32]byte
}

// EvidenceRequest names an epoch.
type EvidenceRequest struct{ Epoch uint64 }

// EvidenceResponse lists what the PKI holds against misbehaving identities.
type EvidenceResponse struct{ Equivocations []Equivocation }
