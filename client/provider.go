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

// Subscriber is a Provider that carries the pushed downstream
// (docs/SPEC.md, "Pushed downstream"): the client receives through it
// when its Provider implements it, and polls with Fetch and Ack, which
// show an observer of the link when and how much it receives, only when
// it does not (or the provider refuses to subscribe).
type Subscriber interface {
	// Subscribe opens a downstream for the mailboxes of cursors (exactly
	// one own, at most clientproto.SubscribeEntries). A provider that
	// does not know the operation fails it with clientproto.ErrUnsupported.
	Subscribe(ctx context.Context, cursors []clientproto.Cursor) (Downstream, error)
}

// Downstream is one open pushed downstream.
type Downstream interface {
	// Next waits for the next push frame.
	Next(ctx context.Context) (*clientproto.Push, error)
	// Pulse writes one pulse (op OpPulse: Seq, Acks, AckSlots, Changes).
	Pulse(ctx context.Context, p *clientproto.Request) error
	// Close ends the downstream.
	Close() error
}
