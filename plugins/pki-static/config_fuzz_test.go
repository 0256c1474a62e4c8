package pkistatic

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/sottonet/sotto/interfaces"
)

// Any config bytes are either accepted as a config that validates again,
// or refused with an error wrapping ErrInvalidArgument; never a panic.
func FuzzParseConfig(f *testing.F) {
	key := hex.EncodeToString(make([]byte, 32))
	for _, s := range []string{
		`{"operator_key":"` + key + `","dir":"/x","network":"n"}`,
		`{"operator_key":"abcd","dir":"/x","network":"n"}`,
		`{"operator_key":"` + key + `","network":"n"}`,
		`{`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseConfig(raw)
		if err != nil {
			if !errors.Is(err, interfaces.ErrInvalidArgument) {
				t.Fatalf("ParseConfig error %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("an accepted config fails Validate: %v", err)
		}
	})
}
