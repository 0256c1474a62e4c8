// Command msg-ratchet serves Sotto's messaging layer (plugins/msg-ratchet)
// as a plugin. It keeps its state in the key-value space its host offers
// (interfaces.Host.KV: durable, private to the plugin's slot), in the
// namespace its config names, so it opens no database of its own.
//
// Config (JSON, every field optional; unknown keys are refused):
//
//	{"namespace": "ratchet", "card_opks": 4}
package main

import (
	"github.com/sottonet/sotto/interfaces"
	msgratchet "github.com/sottonet/sotto/plugins/msg-ratchet"
)

func main() {
	interfaces.Serve(msgratchet.Plugin())
}
