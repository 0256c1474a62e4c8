// The provider link's JavaScript half: a js-libp2p node (WebSockets,
// Noise, yamux) under the client's own Ed25519 identity, which opens
// client-protocol streams to the provider and hands their bytes to Go.
// The protocol itself (framing, request IDs, errors) is spoken by the Go
// client (web/streamlink), exactly as the native client speaks it.

import { createLibp2p } from 'libp2p'
import { webSockets } from '@libp2p/websockets'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { privateKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'

// PROTOCOL is clientproto.Protocol.
export const PROTOCOL = '/sotto/client/1.0.0'

// providerKey returns the provider's Ed25519 public key (its Sotto node
// ID) from the /p2p/ peer ID that ends its multiaddr.
export function providerKey (addr) {
  const i = addr.lastIndexOf('/p2p/')
  if (i < 0) throw new Error(`provider address ${addr} has no /p2p/PEER-ID`)
  multiaddr(addr) // throws on a malformed address
  const id = peerIdFromString(addr.slice(i + 5))
  if (id.type !== 'Ed25519') throw new Error(`provider peer ID ${id} is not an Ed25519 key`)
  return id.publicKey.raw
}

// start runs a js-libp2p node under identity (Go's 64-byte Ed25519
// private key: seed then public key), and returns what bridge.go calls.
// onLink(connected) reports the connection to the provider.
export async function start (identity, onLink) {
  const node = await createLibp2p({
    privateKey: privateKeyFromRaw(identity),
    addresses: { listen: [] },
    transports: [webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // The browser default refuses plain ws:// and private addresses; a
    // Sotto provider is named by the user (or the local demo network).
    connectionGater: { denyDialMultiaddr: () => false }
  })
  node.addEventListener('peer:connect', () => onLink(true))
  node.addEventListener('peer:disconnect', () => onLink(false))
  return {
    // stream opens a stream of protocol (default the client protocol);
    // a pushed downstream on its own protocol ID would pass its own.
    async stream (addr, protocol = PROTOCOL) {
      const s = await node.dialProtocol(multiaddr(addr), protocol)
      return wrap(s)
    },
    async stop () { await node.stop() }
  }
}

// wrap turns a js-libp2p 3.x stream into read/write/reset for Go.
function wrap (s) {
  const it = s[Symbol.asyncIterator]()
  return {
    async read () {
      const { done, value } = await it.next()
      if (done) return null
      return value instanceof Uint8Array ? value : value.subarray()
    },
    async write (buf) {
      if (!s.send(buf)) await s.onDrain()
    },
    reset () {
      s.abort(new Error('reset by the client'))
    }
  }
}
