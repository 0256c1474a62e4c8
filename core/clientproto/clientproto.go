// Package clientproto is what a Sotto client and its provider share: the
// client protocol's ID and messages (/sotto/client/1.0.0, specified in
// docs/SPEC.md, section "Client protocol"), and the derivation of mailbox
// identifiers from what a client holds.
//
// A provider keeps two kinds of mailboxes for its clients:
//
//   - the client's own mailbox, named in forward mode by a Sphinx Recipient
//     command. Its ID is OwnMailbox(client's Ed25519 key); only a client that
//     authenticated with that key (the libp2p Noise handshake) may fetch it.
//   - SURB mailboxes, named by a MailboxDelivery command inside a SURB the
//     client made. The 16-byte mailbox value is a bearer capability: whoever
//     presents it may fetch; the provider stores under SURBMailbox(value), so
//     a store dump does not reveal the capabilities.
//
// The package depends on the standard library and core packages only, so the
// browser (Wasm) build of the client can use it.
package clientproto

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"time"
)

// ErrNoDocument: the provider holds no PKI document for the epoch asked
// for (yet). Callers retry.
var ErrNoDocument = errors.New("clientproto: no document for that epoch")

// Protocol is the libp2p protocol ID clients speak to their provider.
const Protocol = "/sotto/client/1.0.0"

// MailboxID is a provider's storage name for a mailbox (the same 32 bytes as
// interfaces.MailboxID and a Sphinx Recipient ID).
type MailboxID = [32]byte

// DropRecipient is the Recipient ID of a drop decoy: a provider that is the
// final hop of a packet for it discards the payload (and counts it).
var DropRecipient MailboxID

// OwnMailbox is the ID of the mailbox of the client whose identity is pub.
func OwnMailbox(pub ed25519.PublicKey) MailboxID {
	h := sha256.New()
	h.Write([]byte("sotto own mailbox v1\x00"))
	h.Write(pub)
	var id MailboxID
	h.Sum(id[:0])
	return id
}

// SURBMailbox is the storage ID of the SURB mailbox whose capability (the
// 16-byte MailboxDelivery value) is capability.
func SURBMailbox(capability [16]byte) MailboxID {
	h := sha256.New()
	h.Write([]byte("sotto surb mailbox v1\x00"))
	h.Write(capability[:])
	var id MailboxID
	h.Sum(id[:0])
	return id
}

// MailboxRef names a mailbox in a fetch or acknowledgement: the zero value is
// the client's own mailbox; SURB set names the SURB mailbox of Capability.
type MailboxRef struct {
	SURB       bool
	Capability [16]byte
}

// Message is one stored message as a provider returns it: its mailbox
// entry ID and expiry, and its content (see StoredMessage).
type Message struct {
	ID      uint64
	Expires time.Time
	StoredMessage
}
