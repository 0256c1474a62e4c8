package messagingratchet

import (
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/messagingtest"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// users keeps each user's state in its own Badger store under one temp
// dir; Close closes the store, Open reopens it: a real restart.
type users struct {
	dir    string
	grpc   bool
	mu     sync.Mutex
	stores map[interfaces.Messaging]*storagebadger.Store
}

func (u *users) Open(t *testing.T, name string) interfaces.Messaging {
	t.Helper()
	cfg := storagebadger.DefaultConfig(filepath.Join(u.dir, name))
	cfg.SyncWrites = false
	st, err := storagebadger.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(t.Context(), st, "ratchet")
	if err != nil {
		t.Fatal(err)
	}
	var m interfaces.Messaging = r
	if u.grpc {
		m = messagingtest.OverGRPC(t, r)
	}
	u.mu.Lock()
	u.stores[m] = st
	u.mu.Unlock()
	t.Cleanup(func() { u.Close(t, m) })
	return m
}

func (u *users) Close(t *testing.T, m interfaces.Messaging) {
	u.mu.Lock()
	st := u.stores[m]
	delete(u.stores, m)
	u.mu.Unlock()
	if st != nil {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestConformanceInProcess(t *testing.T) {
	messagingtest.Run(t, func(t *testing.T) messagingtest.Users {
		return &users{dir: t.TempDir(), stores: map[interfaces.Messaging]*storagebadger.Store{}}
	})
}

func TestConformanceOverGRPC(t *testing.T) {
	messagingtest.Run(t, func(t *testing.T) messagingtest.Users {
		return &users{dir: t.TempDir(), grpc: true, stores: map[interfaces.Messaging]*storagebadger.Store{}}
	})
}
