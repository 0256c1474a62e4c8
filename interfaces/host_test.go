package interfaces

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/sottonet/sotto/core/epoch"
)

// recordKV is a KV that records the namespaces it is called with, to see
// the slot prefix; it stores nothing.
type recordKV struct {
	KV
	got []string
}

func (r *recordKV) KVGet(ctx context.Context, req *KVGetRequest) (*KVGetResponse, error) {
	r.got = append(r.got, req.Namespace)
	return &KVGetResponse{Values: make([][]byte, len(req.Keys)), Found: make([]bool, len(req.Keys))}, nil
}

// configureOverGRPC runs an unconfigured accounting plugin built by
// factory behind a real go-plugin connection and configures it from the
// host side with host services h. It returns what the factory saw.
func configureOverGRPC(t *testing.T, h *Host) (*Host, error) {
	t.Helper()
	var seen *Host
	p := AccountingPlugin(func(ctx context.Context, raw []byte) (Accounting, error) {
		got, ok := HostFrom(ctx)
		if !ok {
			return nil, errors.New("no host services in the factory's context")
		}
		seen = got
		return accountingStub{}, nil
	})
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{"accounting": p.ServePlugin()})
	t.Cleanup(func() { server.Stop(); _ = client.Close() })
	v, err := client.Dispense("accounting")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = v.(HostConfigurer).ConfigureHost(ctx, []byte("{}"), h)
	return seen, err
}

type accountingStub struct{ Accounting }

func TestHostServicesReachThePluginsFactory(t *testing.T) {
	clk, err := epoch.New(time.Unix(1_700_000_000, 0), 20*time.Second, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	backing := &recordKV{}
	seen, err := configureOverGRPC(t, &Host{Slot: "accounting", KV: SlotKV(backing, "accounting"), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if seen.Slot != "accounting" {
		t.Errorf("slot %q", seen.Slot)
	}
	if !seen.HasClock() || !seen.Clock.Genesis().Equal(clk.Genesis()) || seen.Clock.Period() != clk.Period() || seen.Clock.Grace() != clk.Grace() {
		t.Errorf("clock %v/%v/%v, want %v/%v/%v", seen.Clock.Genesis(), seen.Clock.Period(), seen.Clock.Grace(), clk.Genesis(), clk.Period(), clk.Grace())
	}
	if seen.KV == nil {
		t.Fatal("no host KV")
	}
	defer seen.KV.(hostKVClient).cc.Close()
	if _, err := seen.KV.KVGet(t.Context(), &KVGetRequest{Namespace: "spent", Keys: [][]byte{[]byte("k")}}); err != nil {
		t.Fatal(err)
	}
	if len(backing.got) != 1 || backing.got[0] != "accounting/spent" {
		t.Fatalf("the host's storage saw namespaces %q, want [accounting/spent]", backing.got)
	}
	if _, err := seen.KV.(hostKVClient).AppendMailbox(t.Context(), &AppendMailboxRequest{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a mailbox call through the host KV: err = %v, want it refused", err)
	}
}

func TestAHostWithoutServicesOffersNone(t *testing.T) {
	seen, err := configureOverGRPC(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if seen.KV != nil || seen.HasClock() {
		t.Fatalf("services appeared from nowhere: %+v", seen)
	}
}

func TestSlotKVRefusesNamespacesItCannotPrefix(t *testing.T) {
	kv := SlotKV(&recordKV{}, "accounting")
	for _, ns := range []string{"", string(make([]byte, MaxHostNamespace+1))} {
		if _, err := kv.KVGet(t.Context(), &KVGetRequest{Namespace: ns}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("namespace of %d bytes: err = %v", len(ns), err)
		}
	}
}
