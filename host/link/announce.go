package link

import (
	"fmt"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// addrsFactory decides what the host says it listens on, which is what the
// node publishes in its descriptor: the announce addresses when the
// operator set them; otherwise the listen addresses as resolved, without
// loopback ones unless every listen address is loopback (a node on
// 0.0.0.0 must not tell the network to reach it at 127.0.0.1).
func addrsFactory(listen, announce []string) (func([]ma.Multiaddr) []ma.Multiaddr, error) {
	if len(announce) > 0 {
		var fixed []ma.Multiaddr
		for _, s := range announce {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				return nil, fmt.Errorf("announce %q: %w", s, err)
			}
			fixed = append(fixed, a)
		}
		return func([]ma.Multiaddr) []ma.Multiaddr { return fixed }, nil
	}
	loopbackOnly := true
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil || !manet.IsIPLoopback(a) {
			loopbackOnly = false
		}
	}
	if loopbackOnly {
		return func(as []ma.Multiaddr) []ma.Multiaddr { return as }, nil
	}
	return func(as []ma.Multiaddr) []ma.Multiaddr {
		out := make([]ma.Multiaddr, 0, len(as))
		for _, a := range as {
			if !manet.IsIPLoopback(a) {
				out = append(out, a)
			}
		}
		return out
	}, nil
}
