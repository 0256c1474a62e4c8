// Package pkigossip is Sotto's gossip PKI plugin: members flood signed node
// descriptors over a libp2p gossipsub topic per network, validate each one
// (signature, network, epoch window, size, one descriptor per identity per
// epoch, and admission: endorsements by operator trust roots, or a
// memory-hard proof of work per identity per epoch, as configured), keep
// equivocations as evidence and exclude the equivocator, and assemble the
// per-epoch document from what they hold. Gossip is never
// trusted to have delivered: members run pull anti-entropy over the
// /sotto/pki/1.0.0 stream protocol (compare document hashes, fetch the
// descriptor set on a mismatch), which also lets a restarted member and any
// client fetch the current document from any member.
//
// The design is knowingly open to epistemic, eclipse and Sybil attacks;
// docs/SPEC.md ("PKI") says which and what a verifiable successor needs.
package pkigossip
