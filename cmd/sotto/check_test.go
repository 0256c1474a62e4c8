package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sottonet/sotto/interfaces"
)

// test-accounting is a built-in of the test binary only (which serves
// builtins when re-executed as `plugin NAME`, see TestMain): an accounting
// plugin whose config must give a quota of at least 1, as the issue's
// quota plugin's did.
func init() {
	builtins["test-accounting"] = func() interfaces.Plugin {
		p := interfaces.AccountingPlugin(func(_ context.Context, raw []byte) (interfaces.Accounting, error) {
			var cfg struct {
				Quota uint64 `json:"quota"`
			}
			if err := json.Unmarshal(raw, &cfg); err != nil || cfg.Quota < 1 {
				return nil, fmt.Errorf("%w: test-accounting: quota must be at least 1 (config %s: %v)", interfaces.ErrInvalidArgument, raw, err)
			}
			return testAccounting{}, nil
		})
		p.Name, p.Version = "test-accounting", "v1.2.3"
		return p
	}
}

type testAccounting struct{ interfaces.Accounting }

func (testAccounting) Info(context.Context, *interfaces.AccountingInfoRequest) (*interfaces.AccountingInfoResponse, error) {
	return &interfaces.AccountingInfoResponse{Scheme: "test-quota"}, nil
}

// A check that passes says what each slot runs: the plugin's own name and
// version, and the accounting scheme it announces.
func TestNodeCheckReportsEachPlugin(t *testing.T) {
	dir := keyed(t)
	t.Setenv("SOTTO_PLUGINS__ACCOUNTING__CONFIG__QUOTA", "3") // a typed field from the environment
	cfg := nodeConfig(t, dir, "  accounting: {builtin: test-accounting, config: {quota: 0}}\n")
	out, stderr, err := run(t, "node", "--check", "--config", cfg)
	if err != nil {
		t.Fatalf("check failed: %v\n%s", err, stderr)
	}
	for _, want := range []string{
		"config and keys OK",
		"plugins.storage: storage plugin storage-badger",
		"plugins.pki: pki plugin pki-static",
		`plugins.accounting: accounting plugin test-accounting v1.2.3 started and configured, scheme "test-quota"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the check said %q, want %q in it", out, want)
		}
	}
}
