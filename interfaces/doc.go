// Package interfaces is the contract between a Sotto node (the host) and its
// plugins. It holds one small Go interface per plugin kind (PKI, Accounting,
// Storage, Messaging), the value types they exchange, the gRPC shims that
// carry each interface across a process boundary, and Serve, which a plugin's
// main calls. It is the only package a plugin author must import, and it
// never imports the host.
package interfaces
