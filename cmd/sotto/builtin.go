package main

import (
	accountingfree "github.com/sottonet/sotto/examples/accounting-free"
	"github.com/sottonet/sotto/interfaces"
	msgratchet "github.com/sottonet/sotto/plugins/msg-ratchet"
	blindsig "github.com/sottonet/sotto/plugins/pay-blindsig"
	channels "github.com/sottonet/sotto/plugins/pay-channels"
	shopper "github.com/sottonet/sotto/plugins/pay-shopper"
	pkigossip "github.com/sottonet/sotto/plugins/pki-gossip"
	pkistatic "github.com/sottonet/sotto/plugins/pki-static"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
	storagepostgres "github.com/sottonet/sotto/plugins/storage-postgres"
)

// builtins are the plugins compiled into the sotto binary: `sotto plugin
// NAME` serves builtins[NAME], and a node's config names them with
// `builtin = "NAME"`. To add one, add a line: name → a function returning
// the interfaces.Plugin its own main would hand to interfaces.Serve.
var builtins = map[string]func() interfaces.Plugin{
	"storage-badger":   storagebadger.Plugin,
	"storage-postgres": storagepostgres.Plugin,
	"pki-gossip":       pkigossip.Plugin,
	"pki-static":       pkistatic.Plugin,
	"pay-blindsig":     blindsig.Plugin,
	"pay-channels":     channels.Plugin,
	"pay-shopper":      shopper.Plugin,
	// The work ledger alone (no payment): what mixes run in the demo, so
	// that their forwarded work reaches a ledger under every design.
	"accounting-free": accountingfree.Plugin,
	// The messaging layer runs in process in send, recv and demo; served
	// out of process it keeps its state in the host KV it is offered.
	"msg-ratchet": msgratchet.Plugin,
}
