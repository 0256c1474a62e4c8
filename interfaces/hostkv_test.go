package interfaces_test

import (
	"context"
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
	"github.com/sottonet/sotto/interfaces/plugintest"
	"github.com/sottonet/sotto/interfaces/storagetest"
)

type accountingWithKV struct {
	interfaces.Accounting
	kv interfaces.KV
}

// The host KV a plugin reaches over go-plugin's broker keeps every
// promise of the KV contract: the storage suite's key-value cases run
// through it, from the plugin's side, against a fresh store each.
func TestHostKVKeepsTheKVContract(t *testing.T) {
	storagetest.RunKV(t, func(t *testing.T) interfaces.KV {
		var kv interfaces.KV
		p := interfaces.AccountingPlugin(func(ctx context.Context, raw []byte) (interfaces.Accounting, error) {
			h, _ := interfaces.HostFrom(ctx)
			kv = h.KV
			return accountingWithKV{kv: h.KV}, nil
		})
		host := &interfaces.Host{Slot: "accounting", KV: interfaces.SlotKV(memkv.New(), "accounting")}
		if _, err := plugintest.Configure(t, p, nil, host); err != nil {
			t.Fatal(err)
		}
		if kv == nil {
			t.Fatal("the factory got no host KV")
		}
		return kv
	}, interfaces.MaxHostNamespace)
}
