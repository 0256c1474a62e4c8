package pkidoc

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
)

// PeerIDOf returns the binary libp2p peer ID of an Ed25519 identity: the
// identity multihash (code 0x00, length 36) of the libp2p protobuf
// PublicKey{Type: Ed25519, Data: key} (08 01 12 20 || key). Small keys are
// inlined rather than hashed (libp2p's peer-id spec), so the peer ID is the
// key itself in a wrapper: a descriptor cannot name a peer ID that its
// identity does not own. Derived here from the spec so the core stays free
// of libp2p; host/keystore's tests check it against libp2p's own.
func PeerIDOf(identity ed25519.PublicKey) []byte {
	out := make([]byte, 0, 6+ed25519.PublicKeySize)
	out = append(out, 0x00, 0x24, 0x08, 0x01, 0x12, 0x20)
	return append(out, identity...)
}

// multiaddr protocol codes a descriptor may carry, with the size of their
// value in bytes (-1: varint length-prefixed). Others are refused: a node
// that publishes an address nobody can dial only hides itself.
var maProtocols = map[uint64]int{
	0x04:   4,  // ip4
	0x29:   16, // ip6
	0x2a:   -1, // ip6zone
	0x35:   -1, // dns
	0x36:   -1, // dns4
	0x37:   -1, // dns6
	0x06:   2,  // tcp
	0x0111: 2,  // udp
	0x01cd: 0,  // quic-v1 (0x01cc is draft-29 "quic", which libp2p no longer speaks)
	0x01dd: 0,  // ws
	0x01de: 0,  // wss
	0x01c0: 0,  // tls
	0x01c1: -1, // sni
	0x01d1: 0,  // webtransport
	0x01d2: -1, // certhash
	0x01a5: -1, // p2p
}

// checkMultiaddr checks that b is a well-formed binary multiaddr of known
// protocols: a sequence of (varint code, value) with each value of its
// protocol's size.
func checkMultiaddr(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("empty multiaddr")
	}
	for len(b) > 0 {
		code, n := binary.Uvarint(b)
		if n <= 0 {
			return fmt.Errorf("bad protocol varint")
		}
		b = b[n:]
		size, ok := maProtocols[code]
		if !ok {
			return fmt.Errorf("unknown multiaddr protocol 0x%x", code)
		}
		if size < 0 {
			l, n := binary.Uvarint(b)
			if n <= 0 || l == 0 || l > uint64(len(b)-n) {
				return fmt.Errorf("bad length for protocol 0x%x", code)
			}
			b = b[n:]
			size = int(l)
		}
		if len(b) < size {
			return fmt.Errorf("value of protocol 0x%x cut short", code)
		}
		b = b[size:]
	}
	return nil
}
