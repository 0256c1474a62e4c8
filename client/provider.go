package client

import (
	"context"

	"github.com/sottonet/sotto/core/clientproto"
)

// Provider is the client's link to its provider: everything the client
// needs from the network goes through it. Package client/p2p implements it
// over go-libp2p (the client protocol, clientproto.Protocol); the browser
// implements it over js-libp2p. Implementations must be safe for concurrent
// use; every call honours its context.
type Provider interface {
	// Document returns the canonical encoding of the PKI document for an
	// epoch (the client verifies it with pkidoc.ParseDocument). Before the
	// provider holds one it returns an error wrapping clientproto.ErrNoDocument.
	Document(ctx context.Context, epoch uint64) ([]byte, error)
	// Send hands one Sphinx packet (the geometry's PacketLength bytes) to
	// the provider. firstHop is the Sphinx node ID of the packet's first
	// hop: the provider's own ID for a packet built through it, or a
	// layer-0 mix for a reply made from a SURB, which the provider forwards
	// as it is. An error means the packet was not accepted.
	Send(ctx context.Context, firstHop [32]byte, packet []byte) error
	// Fetch returns up to limit messages of a mailbox with IDs above after,
	// in ascending ID order (limit 0: the provider's default).
	Fetch(ctx context.Context, mb clientproto.MailboxRef, after uint64, limit int) ([]clientproto.Message, error)
	// Ack deletes messages of a mailbox. Idempotent.
	Ack(ctx context.Context, mb clientproto.MailboxRef, ids []uint64) error
	// Close ends the link.
	Close() error
}
