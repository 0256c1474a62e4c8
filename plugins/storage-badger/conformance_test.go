package storagebadger

import (
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/storagetest"
)

func openConformance(t *testing.T) *Store {
	t.Helper()
	return openTest(t, testConfig(t.TempDir()))
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) interfaces.Storage { return openConformance(t) })
}

func TestConformanceOverGRPC(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) interfaces.Storage {
		return storagetest.OverGRPC(t, openConformance(t))
	})
}
