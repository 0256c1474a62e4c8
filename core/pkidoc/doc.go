// Package pkidoc holds the PKI's wire objects: a node's signed descriptor and
// the per-epoch document every client and node routes by, with their
// canonical encodings, signatures, hashes and the deterministic layer
// assignment. They are specified in docs/SPEC.md, section "PKI".
//
// The package depends on the standard library only, so that clients (the
// browser's Wasm build included) can verify documents without importing the
// plugin machinery; package interfaces re-exports every name for plugins.
package pkidoc

import "errors"

// ErrInvalidArgument is wrapped by every error this package returns for bad
// input. It is the same value as interfaces.ErrInvalidArgument, so the error
// survives a plugin's gRPC boundary.
var ErrInvalidArgument = errors.New("invalid argument")
