// Package interfaces is the contract between a Sotto node (the host) and its
// plugins. It holds one small Go interface per plugin kind (PKI, Accounting,
// Storage, Messaging), the value types they exchange, the sentinel errors
// that survive the process boundary, and Serve, which a plugin's main calls;
// the conformance suites are its subpackages (storagetest, pkitest,
// accountingtest, messagingtest). It is the only package a plugin author
// must import, and it never imports the host.
//
// The wire contract is the .proto files under interfaces/proto/<kind>/v1
// (proto packages sotto.<kind>.v1), frozen once released. The Go code
// generated from them lives in interfaces/internal/proto and the gRPC shims
// that carry each interface across the boundary are unexported: no exported
// identifier mentions a generated type, so both can change without breaking
// a plugin (docs/PLUGINS.md, "What the interfaces package exports, and why").
package interfaces
