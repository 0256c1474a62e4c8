package main

import (
	"errors"
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
	"github.com/sottonet/sotto/interfaces/messagingtest"
	"github.com/sottonet/sotto/interfaces/plugintest"
	msgratchet "github.com/sottonet/sotto/plugins/msg-ratchet"
)

// users start the plugin the way a host does, through its own factory,
// each with a host KV that outlives a restart of the plugin.
type users struct{ kvs map[string]interfaces.KV }

func (u *users) Open(t *testing.T, name string) interfaces.Messaging {
	t.Helper()
	kv, ok := u.kvs[name]
	if !ok {
		kv = interfaces.SlotKV(memkv.New(), "messaging")
		u.kvs[name] = kv
	}
	v, err := plugintest.Configure(t, msgratchet.Plugin(), nil, &interfaces.Host{Slot: "messaging", KV: kv})
	if err != nil {
		t.Fatal(err)
	}
	return v.(interfaces.Messaging)
}

func (u *users) Close(*testing.T, interfaces.Messaging) {}

// The binary's factory, configured over gRPC with a host KV, passes the
// messaging conformance suite, restarts included.
func TestConformanceThroughTheHostKV(t *testing.T) {
	messagingtest.Run(t, func(t *testing.T) messagingtest.Users { return &users{kvs: map[string]interfaces.KV{}} })
}

func TestRefusesAHostWithoutKVAndABadConfig(t *testing.T) {
	if _, err := plugintest.Configure(t, msgratchet.Plugin(), nil, nil); !errors.Is(err, interfaces.ErrUnavailable) {
		t.Fatalf("no host KV: err = %v, want ErrUnavailable", err)
	}
	host := &interfaces.Host{KV: memkv.New()}
	if _, err := plugintest.Configure(t, msgratchet.Plugin(), []byte(`{"storage":{}}`), host); !errors.Is(err, interfaces.ErrInvalidArgument) {
		t.Fatalf("unknown config field: err = %v, want ErrInvalidArgument", err)
	}
}
