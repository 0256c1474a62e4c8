package msgratchet

import (
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
	"github.com/sottonet/sotto/interfaces/messagingtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// users keeps each user's state in its own KV, kept across Close and Open:
// Open builds a new Ratchet on the state the previous one left, a restart
// of the plugin (the store itself is the host's, and outlives it).
type users struct {
	grpc bool
	mu   sync.Mutex
	kvs  map[string]*memkv.KV
}

func newUsers(grpc bool) *users { return &users{grpc: grpc, kvs: map[string]*memkv.KV{}} }

func (u *users) Open(t *testing.T, name string) interfaces.Messaging {
	t.Helper()
	u.mu.Lock()
	kv := u.kvs[name]
	if kv == nil {
		kv = memkv.New()
		u.kvs[name] = kv
	}
	u.mu.Unlock()
	r, err := Open(t.Context(), kv, "ratchet")
	if err != nil {
		t.Fatal(err)
	}
	if u.grpc {
		return messagingtest.OverGRPC(t, r)
	}
	return r
}

// Close drops the plugin; its state stays in the user's KV.
func (u *users) Close(t *testing.T, m interfaces.Messaging) {}

func TestConformanceInProcess(t *testing.T) {
	messagingtest.Run(t, func(t *testing.T) messagingtest.Users {
		return newUsers(false)
	})
}

func TestConformanceOverGRPC(t *testing.T) {
	messagingtest.Run(t, func(t *testing.T) messagingtest.Users {
		return newUsers(true)
	})
}
