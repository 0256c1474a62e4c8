package interfaces_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The shims must not leak goroutines past their connections.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
