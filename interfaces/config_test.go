package interfaces

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeConfig(t *testing.T) {
	type cfg struct {
		Rate int    `json:"rate"`
		Name string `json:"name"`
	}
	for _, tc := range []struct {
		name, raw string
		want      cfg
		err       string // "" accepts
	}{
		{"empty input keeps the defaults", "", cfg{Rate: 7}, ""},
		{"blank input keeps the defaults", " \n\t", cfg{Rate: 7}, ""},
		{"an object sets what it names", `{"name":"x"}`, cfg{Rate: 7, Name: "x"}, ""},
		{"an unknown key", `{"rat":1}`, cfg{}, `unknown field "rat"`},
		{"trailing data", `{"rate":1} {}`, cfg{}, "trailing data"},
		{"a wrong type", `{"rate":"1"}`, cfg{}, "decoding JSON"},
		{"not JSON", `rate: 1`, cfg{}, "decoding JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg{Rate: 7}
			err := DecodeConfig([]byte(tc.raw), &c)
			if tc.err == "" {
				if err != nil || c != tc.want {
					t.Fatalf("got %+v, %v; want %+v", c, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want ErrInvalidArgument saying %q", err, tc.err)
			}
		})
	}
}
