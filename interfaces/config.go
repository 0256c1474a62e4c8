package interfaces

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// DecodeConfig decodes a plugin's raw JSON config into v, strictly: an
// unknown key (a typo that would otherwise fall back to a default) and
// anything after the JSON object are refused. Empty or blank input leaves
// v as it is, so a plugin's defaults stand. Errors wrap
// ErrInvalidArgument; a plugin adds its name and checks the values.
func DecodeConfig(raw []byte, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: decoding JSON: %v", ErrInvalidArgument, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidArgument)
	}
	return nil
}
