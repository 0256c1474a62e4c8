package interfaces_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/storagetest"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openBadger(t *testing.T) *storagebadger.Store {
	t.Helper()
	cfg := storagebadger.DefaultConfig(t.TempDir())
	cfg.SyncWrites = false // the suite checks semantics, not fsync
	s, err := storagebadger.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// The shims must carry every semantic of storage.go unchanged: the suite
// runs against Badger in process and through a real go-plugin connection.
func TestStorageConformanceInProcess(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) interfaces.Storage { return openBadger(t) })
}

func TestStorageConformanceOverGRPC(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) interfaces.Storage { return storagetest.OverGRPC(t, openBadger(t)) })
}
