// Package client is a Sotto client: it talks to its provider through a
// Provider, builds Sphinx packets over the PKI document's stratified
// topology and sends them on Loopix's cover streams.
//
// A Client sends on one merged Poisson stream of rate λP+λL+λD taken from
// the PKI document (core/cover): a payload slot carries the next queued
// message fragment or, when nothing is queued, a drop decoy; a loop slot
// carries a loop that crosses the network back to the client's own mailbox;
// a drop slot carries a decoy that a random provider discards. Every packet
// has the network's one size, so an observer of the client's link sees the
// same Poisson process whether or not the user talks.
//
// Messages are encrypted end to end to the recipient's HPKE key (RFC 9180,
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305), cut into
// fragments that each fill one packet body, and reassembled at the
// recipient, exactly once per message ID. A fragment sent to a forward
// contact carries a SURB in the forward payload's SURB slot
// (clientproto.PackForward); the recipient's provider answers through it
// with an acknowledgement the moment it stores the fragment, so the sender
// retransmits over a fresh path only what did not arrive. A fragment sent
// to a receiver-anonymous contact travels in one of the contact's SURBs
// instead and cannot be acknowledged (the provider cannot read the SURB
// reply body).
//
// Loops come back twice: their body through the forward path into the
// client's own mailbox, then the provider's acknowledgement through the
// loop's SURB. A leg not back within its timeout counts as lost and its
// mixes become suspects that message paths avoid while alternatives exist;
// Stats reports them.
//
// The package imports neither go-libp2p nor go-plugin nor Badger, so it
// builds for js/wasm; the network is whatever implements Provider.
package client
