package config

import (
	"errors"
	"strings"
	"testing"
)

// The cheating mix of the secret-shopper experiments is refused unless the
// node is on loopback and its environment consents.
func TestExperimentCheatIsRefusedOutsideExperiments(t *testing.T) {
	for _, tt := range []struct {
		name    string
		consent bool
		spoil   func(*Config)
		want    string // "" accepted
	}{
		{"without the consent variable it is refused", false, func(*Config) {}, "refused unless SOTTOLAB_CHEAT_CONSENT"},
		{"off loopback it is refused", true, func(c *Config) { c.Listen = []string{"/ip4/0.0.0.0/tcp/4100"} }, "loopback only"},
		{"on a provider it is refused", true, func(c *Config) { c.Role, c.Mix.Layer = RoleProvider, 0 }, "mixes only"},
		{"a fraction of 1 or more is refused", true, func(c *Config) { c.Experiment.CheatDropForwardedFraction = 1 }, "must be in [0, 1)"},
		{"with consent on loopback it is accepted", true, func(*Config) {}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.consent {
				t.Setenv(ExperimentEnv, ExperimentConsent)
			} else {
				t.Setenv(ExperimentEnv, "")
			}
			c := valid(t)
			c.Listen = []string{"/ip4/127.0.0.1/tcp/4100"}
			c.Experiment.CheatDropForwardedFraction = 0.3
			tt.spoil(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate = %v, want it accepted", err)
			case tt.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate = %v, want a refusal saying %q", err, tt.want)
			}
		})
	}
}

func TestAuditRateIsForProviders(t *testing.T) {
	for _, tt := range []struct {
		name     string
		role     string
		rate     float64
		accepted bool
	}{
		{"a provider auditing at 5/s is accepted", RoleProvider, 5, true},
		{"a mix cannot audit", RoleMix, 5, false},
		{"a negative rate is refused", RoleProvider, -1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := valid(t)
			c.Role, c.Mix.Layer = tt.role, 0
			c.Provider.AuditRate = tt.rate
			err := c.Validate()
			if (err == nil) != tt.accepted {
				t.Errorf("Validate = %v", err)
			}
			if err != nil && !strings.Contains(err.Error(), "provider.audit_rate") {
				t.Errorf("Validate = %v, want it to name provider.audit_rate", err)
			}
		})
	}
}
