package accountingfree

import (
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/accountingtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var opts = accountingtest.Options{
	Credential: func(*testing.T, interfaces.Accounting) []byte { return []byte("anything goes") },
}

func TestConformanceInProcess(t *testing.T) {
	accountingtest.Run(t, func(*testing.T) interfaces.Accounting { return New(Config{}) }, opts)
}

func TestConformanceOverGRPC(t *testing.T) {
	accountingtest.Run(t, func(t *testing.T) interfaces.Accounting { return accountingtest.OverGRPC(t, New(Config{})) }, opts)
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		want      uint64
		bad       bool
	}{
		{"empty config takes defaults", "", 0, false},
		{"max_grant is read", `{"max_grant": 7}`, 7, false},
		{"unknown keys are refused", `{"max_grnat": 7}`, 0, true},
		{"garbage is refused", `{`, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.raw))
			if tc.bad {
				if !errors.Is(err, interfaces.ErrInvalidArgument) {
					t.Fatalf("err = %v, want ErrInvalidArgument", err)
				}
				return
			}
			if err != nil || c.MaxGrant != tc.want {
				t.Fatalf("ParseConfig = %+v, %v; want MaxGrant %d", c, err, tc.want)
			}
		})
	}
}
