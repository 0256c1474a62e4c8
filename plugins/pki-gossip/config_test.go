package pkigossip

import (
	"errors"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/epoch"
)

func TestParseConfig(t *testing.T) {
	const params = `"params":{"Hops":3,"PayloadLen":2048,"Layers":3,"Mu":1,"LambdaP":1,"LambdaL":1,"LambdaD":1,"LambdaM":1}`
	tests := []struct {
		name string
		raw  string
		ok   bool
	}{
		{"a network and parameters are enough", `{"network":"n",` + params + `}`, true},
		{"a missing network is refused", `{` + params + `}`, false},
		{"missing parameters are refused", `{"network":"n"}`, false},
		{"a short identity seed is refused", `{"network":"n","identity_seed":"AAAA",` + params + `}`, false},
		{"a grace as long as the period is refused", `{"network":"n","epoch_period":1000000000,"grace":1000000000,` + params + `}`, false},
		{"params disagreeing with the epoch period are refused", `{"network":"n","epoch_period":1000000000,"params":{"Hops":3,"PayloadLen":2048,"Layers":3,"EpochPeriod":5}}`, false},
		{"broken JSON is refused", `{"network":`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.raw))
			if (err == nil) != tt.ok {
				t.Fatalf("error = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (c.EpochPeriod != epoch.DefaultPeriod || c.Ahead != 2 || c.SyncInterval != 30*time.Second) {
				t.Fatalf("defaults not applied: %+v", c)
			}
			if !tt.ok && tt.name != "broken JSON is refused" && !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
		})
	}
}
