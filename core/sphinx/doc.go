// Package sphinx implements Sotto's mix packet format: Sphinx (Danezis and
// Goldberg, 2009) in the X25519 parameterization that Katzenpost specifies
// and publishes test vectors for (HKDF-SHA256, HMAC-SHA256, AES-256-CTR for
// the header, AEZ v5 as the payload SPRP, SURBs), plus Sotto's own routing
// command for mailbox delivery. docs/SPEC.md, "Packet format", is the
// specification; this package follows it byte for byte.
//
// A sender builds packets with NewPacket (or NewSURB and NewPacketFromSURB
// for replies); every node on the path runs an Unwrapper, which removes one
// layer in place and returns the replay tag, the routing commands and, at the
// last hop, the payload. Replay detection is the node's job.
//
// The node's scalar multiplications are a constant-time Montgomery ladder on
// filippo.io/edwards25519/field; the sender composes the clamped scalars so
// that a path costs one variable-base and one fixed-base multiplication per
// hop on filippo.io/edwards25519, giving the same bytes as Katzenpost's
// O(hops²) construction.
package sphinx
