package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	ma "github.com/multiformats/go-multiaddr"
)

// DefaultGossipListen is pki-gossip's listen address when its config names
// none (plugins/pki-gossip, Config.Listen).
const DefaultGossipListen = "/ip4/0.0.0.0/tcp/4101"

// portUse is one listener: its transport ("tcp" or "udp"), port and the key
// that asks for it.
type portUse struct {
	proto string
	port  int
	ip    string // "" or an unspecified address: every interface
	key   string
}

func listenerOf(key, s string) (portUse, bool) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return portUse{}, false
	}
	u := portUse{key: key}
	if ip, err := a.ValueForProtocol(ma.P_IP4); err == nil {
		u.ip = ip
	} else if ip, err := a.ValueForProtocol(ma.P_IP6); err == nil {
		u.ip = ip
	}
	if p, err := a.ValueForProtocol(ma.P_TCP); err == nil {
		u.proto = "tcp"
		u.port, _ = strconv.Atoi(p)
	} else if p, err := a.ValueForProtocol(ma.P_UDP); err == nil {
		u.proto = "udp"
		u.port, _ = strconv.Atoi(p)
	} else {
		return portUse{}, false
	}
	return u, u.port != 0
}

func (u portUse) overlaps(v portUse) bool {
	if u.proto != v.proto || u.port != v.port {
		return false
	}
	any := func(ip string) bool { return ip == "" || net.ParseIP(ip).IsUnspecified() }
	return any(u.ip) || any(v.ip) || net.ParseIP(u.ip).Equal(net.ParseIP(v.ip))
}

// checkPorts refuses two listeners of the node on one port: the node's own
// (TCP, QUIC, WebSocket), the built-in gossip PKI's and /metrics. Without
// it one of them silently does not exist.
func (c *Config) checkPorts() error {
	var uses []portUse
	for i, s := range c.Listen {
		if u, ok := listenerOf(fmt.Sprintf("listen[%d]", i), s); ok {
			uses = append(uses, u)
		}
	}
	if c.Plugins.PKI.Builtin == "pki-gossip" {
		var pl []string
		switch l := c.Plugins.PKI.Config["listen"].(type) {
		case []any:
			for _, v := range l {
				if s, ok := v.(string); ok {
					pl = append(pl, s)
				}
			}
		case []string:
			pl = l
		case nil:
			pl = []string{DefaultGossipListen}
		}
		for i, s := range pl {
			if u, ok := listenerOf(fmt.Sprintf("plugins.pki.config.listen[%d]", i), s); ok {
				uses = append(uses, u)
			}
		}
	}
	if host, port, err := net.SplitHostPort(c.Metrics.Listen); err == nil {
		if p, _ := strconv.Atoi(port); p != 0 {
			uses = append(uses, portUse{proto: "tcp", port: p, ip: host, key: "metrics.listen"})
		}
	}
	var errs []error
	for i, u := range uses {
		for _, v := range uses[:i] {
			if u.overlaps(v) {
				errs = append(errs, problem(u.key, "%s port %d is already taken by %s", u.proto, u.port, v.key))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// CheckPKIConfig names the keys a built-in PKI plugin cannot start
// without, so that `sotto node --check` says which one is missing before
// the plugin fails with its own, vaguer, message (pki-gossip's "zero hops"
// was a missing params). A network file fills them all. It is not part of
// Validate: a node given its PKI in process (tests) has no plugin config.
func (c *Config) CheckPKIConfig() error {
	slot := c.Plugins.PKI
	var required []string
	switch slot.Builtin {
	case "pki-gossip":
		required = []string{"network", "params", "admission"}
	case "pki-static":
		required = []string{"network", "operator_key", "dir"}
	default:
		return nil
	}
	var errs []error
	for _, k := range required {
		if _, ok := slot.Config[k]; !ok {
			errs = append(errs, problem("plugins.pki.config."+k, "must be set for %s (or set network_file, which sets it)", slot.Builtin))
		}
	}
	return errors.Join(errs...)
}
