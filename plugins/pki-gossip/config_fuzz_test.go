package pkigossip

import (
	"errors"
	"testing"
)

// An operator's config file is not network input, but a typo in it must
// give a clear error that names the config, never a panic or a member
// started on half a config: any bytes are either accepted as a config that
// validates again, or refused with an error wrapping ErrConfig.
func FuzzParseConfig(f *testing.F) {
	const params = `"params":{"Hops":3,"PayloadLen":2048,"Layers":3,"Mu":1,"LambdaP":1,"LambdaL":1,"LambdaD":1,"LambdaM":1}`
	for _, s := range []string{
		`{"network":"n","admission":{"policy":"none"},` + params + `}`,
		`{"network":"n","admission":{"policy":"open","open":{"difficulty":40}},` + params + `}`,
		`{"network":"n","admission":{"policy":"endorsed","endorsed":{"roots":["AAAA"],"threshold":2}},` + params + `}`,
		`{"network":"n","epoch_period":1000000000,"grace":1000000000,"admission":{"policy":"none"},` + params + `}`,
		`{"network":"n","identity_seed":"AAAA","listen":["/ip4/127.0.0.1/tcp/0"],"sync_interval":-1,"admission":{"policy":"none"},` + params + `}`,
		`{"network":`, ``, `null`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseConfig(raw)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("ParseConfig error %v does not wrap ErrConfig", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("an accepted config fails Validate: %v", err)
		}
	})
}
