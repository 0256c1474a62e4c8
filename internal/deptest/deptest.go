// Package deptest holds the dependency rules of the tree as a test (after
// tailscale's deptest): the plugin contract never pulls in the host, the
// protocol core stays free of RPC and plugin machinery, and the client
// (also built for js/wasm) stays free of go-plugin and Badger.
package deptest
