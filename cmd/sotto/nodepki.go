package main

import (
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/keystore"
)

// withPKIIdentity hands the built-in gossip PKI its libp2p identity,
// derived from the node's keystore (keystore.PKISeed), unless the config
// sets identity_seed itself: no second secret in the config, and a peer ID
// that `sotto node addrs` can print for other members' bootstrap lists.
// The seed travels to the plugin with its config, never to disk.
func withPKIIdentity(c *config.Config, ks *keystore.Keystore) error {
	slot := &c.Plugins.PKI
	if slot.Builtin != config.PKIGossip {
		return nil
	}
	if _, ok := slot.Config["identity_seed"]; ok {
		return nil
	}
	seed, err := ks.PKISeed()
	if err != nil {
		return err
	}
	if slot.Config == nil {
		slot.Config = map[string]any{}
	}
	slot.Config["identity_seed"] = seed // JSON: base64
	return nil
}
