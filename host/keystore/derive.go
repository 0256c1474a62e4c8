package keystore

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// pkiSeedInfo labels the derivation of the PKI plugin's libp2p identity.
const pkiSeedInfo = "sotto pki plugin libp2p identity v1"

// PKISeed returns the 32-byte Ed25519 seed of the PKI plugin's own libp2p
// identity (pki-gossip runs a second libp2p host), derived from the node's
// identity key with HKDF-SHA256. The node hands it to the plugin when it
// starts it, so that no second secret is kept in the config, and the
// plugin's peer ID is as stable as the node's. The caller should zero it
// when done.
func (ks *Keystore) PKISeed() ([]byte, error) {
	id := ks.Identity()
	if len(id) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("keystore: no identity key")
	}
	seed := id.Seed()
	defer clear(seed)
	out, err := hkdf.Key(sha256.New, seed, nil, pkiSeedInfo, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("keystore: derive PKI seed: %w", err)
	}
	return out, nil
}

// PKIPeerID is the libp2p peer ID of the PKI plugin's identity (PKISeed):
// what other members put after /p2p/ in their bootstrap lists.
func (ks *Keystore) PKIPeerID() (peer.ID, error) {
	seed, err := ks.PKISeed()
	if err != nil {
		return "", err
	}
	defer clear(seed)
	return SeedPeerID(seed)
}

// SeedPeerID is the libp2p peer ID of an Ed25519 seed.
func SeedPeerID(seed []byte) (peer.ID, error) {
	if len(seed) != ed25519.SeedSize {
		return "", fmt.Errorf("keystore: seed of %d bytes", len(seed))
	}
	sk, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		return "", err
	}
	return peer.IDFromPrivateKey(sk)
}
