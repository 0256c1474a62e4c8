// Package p2p is the client's link to its provider over go-libp2p: it
// implements client.Provider by speaking the client protocol
// (clientproto.Protocol, /sotto/client/1.0.0; docs/SPEC.md, "Client
// protocol") on one long-lived stream.
//
// Connect is what an application calls: given the provider's multiaddr
// (ending in /p2p/PEER-ID) and a client.Config (its Store, above all), it
// takes the provider's Sotto identity from the peer ID (ProviderID), dials
// under the client's identity, learns the network's epoch clock from the
// provider's current document, and returns the client to Run. Open does
// the same without touching the network, for a program that must start
// while its provider is down (Run dials, with backoff). A broken connection
// is dialled again at the next call, without libp2p's own dial backoff:
// the client paces its retries.
//
// Dial starts a small client-only libp2p host (TCP, QUIC and WebSocket
// transports, Noise, yamux; it listens nowhere) whose identity is the
// client's Ed25519 key, so that the provider knows which mailbox is the
// client's own. Calls are multiplexed on the stream by request ID, so
// several goroutines may wait on the provider at once. A broken stream is
// replaced once per call (a new stream, redialling if the connection is
// gone); a Redeem that was already written is not repeated, since the
// provider may have spent the credential.
//
// The package imports go-libp2p, which does not build for js/wasm: there the
// package is empty (its files carry a build constraint), so that
// `GOOS=js GOARCH=wasm go build ./client/...` builds the whole client, and the
// browser implements client.Provider over js-libp2p instead.
package p2p
