package link

import (
	"testing"

	"go.uber.org/goleak"
)

// Hosts must stop everything they started when closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
