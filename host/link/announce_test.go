package link

import (
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

func TestAddrsFactory(t *testing.T) {
	resolved := []ma.Multiaddr{
		ma.StringCast("/ip4/127.0.0.1/tcp/4100"),
		ma.StringCast("/ip4/10.0.0.5/tcp/4100"),
	}
	tests := []struct {
		name             string
		listen, announce []string
		want             []string
	}{
		{"a wildcard listener publishes no loopback address", []string{"/ip4/0.0.0.0/tcp/4100"}, nil, []string{"/ip4/10.0.0.5/tcp/4100"}},
		{"a loopback-only node publishes loopback", []string{"/ip4/127.0.0.1/tcp/4100"}, nil, []string{"/ip4/127.0.0.1/tcp/4100", "/ip4/10.0.0.5/tcp/4100"}},
		{"announce replaces what is resolved", []string{"/ip4/0.0.0.0/tcp/4100"}, []string{"/dns4/mix.example/tcp/4100"}, []string{"/dns4/mix.example/tcp/4100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := addrsFactory(tt.listen, tt.announce)
			if err != nil {
				t.Fatal(err)
			}
			got := f(resolved)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i].String() != tt.want[i] {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
	if _, err := addrsFactory(nil, []string{"not a multiaddr"}); err == nil {
		t.Error("a bad announce address was accepted")
	}
}
