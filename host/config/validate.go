package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/sottonet/sotto/interfaces"
)

// Validate checks the whole config and returns every problem at once,
// joined with errors.Join; each names its key path ("mix.layer: ...") and
// wraps ErrInvalid. It returns nil for a config a node can start with.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	switch c.Role {
	case RoleMix:
		if c.Mix.Layer < 0 || c.Mix.Layer > MaxLayers {
			add(problem("mix.layer", "is ignored (the PKI document deals layers), but must be 0..%d, got %d", MaxLayers, c.Mix.Layer))
		}
	case RoleProvider:
		if c.Mix.Layer != 0 {
			add(problem("mix.layer", "must be unset for a provider, got %d", c.Mix.Layer))
		}
	case "":
		add(problem("role", "must be set to %q or %q", RoleMix, RoleProvider))
	default:
		add(problem("role", "must be %q or %q, got %q", RoleMix, RoleProvider, c.Role))
	}

	switch {
	case c.Network == "":
		add(problem("network", "must be set"))
	case len(c.Network) > interfaces.MaxNetworkLen:
		add(problem("network", "must be at most %d bytes, got %d", interfaces.MaxNetworkLen, len(c.Network)))
	}
	if c.DataDir == "" {
		add(problem("data_dir", "must be set"))
	}

	switch {
	case len(c.Listen) == 0:
		add(problem("listen", "must name at least one multiaddr"))
	case len(c.Listen) > interfaces.MaxAddrs:
		add(problem("listen", "at most %d addresses, got %d", interfaces.MaxAddrs, len(c.Listen)))
	}
	for i, s := range c.Listen {
		add(validListen(fmt.Sprintf("listen[%d]", i), s, c.Role == RoleProvider))
	}

	for i, s := range c.Announce {
		if _, err := ma.NewMultiaddr(s); err != nil {
			add(problem(fmt.Sprintf("announce[%d]", i), "not a multiaddr %q: %v", s, err))
		}
	}
	add(c.checkPorts())

	if c.Epoch.Genesis.IsZero() {
		add(problem("epoch.genesis", "must be set (RFC 3339, e.g. 2026-01-01T00:00:00Z)"))
	}
	if c.Epoch.Period <= 0 {
		add(problem("epoch.period", "must be positive, got %v", c.Epoch.Period))
	}
	if c.Epoch.Grace < 0 || (c.Epoch.Period > 0 && c.Epoch.Grace >= c.Epoch.Period) {
		add(problem("epoch.grace", "must be in [0, epoch.period %v), got %v", c.Epoch.Period, c.Epoch.Grace))
	}

	add(c.Plugins.PKI.validate("plugins.pki", true))
	add(c.Plugins.Storage.validate("plugins.storage", true))
	add(c.Plugins.Accounting.validate("plugins.accounting", false))

	if c.Mixing.QueueCapacity < 1 {
		add(problem("mixing.queue_capacity", "must be at least 1, got %d", c.Mixing.QueueCapacity))
	}
	if c.Mixing.UnwrapWorkers < 1 {
		add(problem("mixing.unwrap_workers", "must be at least 1, got %d", c.Mixing.UnwrapWorkers))
	}
	if c.Mixing.MaxDelay <= 0 {
		add(problem("mixing.max_delay", "must be positive, got %v", c.Mixing.MaxDelay))
	}

	l := c.Limits
	for _, f := range []struct {
		path string
		v    int
	}{
		{"limits.max_conns", l.MaxConns},
		{"limits.max_conns_per_peer", l.MaxConnsPerPeer},
		{"limits.max_streams", l.MaxStreams},
		{"limits.max_streams_per_peer", l.MaxStreamsPerPeer},
		{"limits.max_memory_mb", l.MaxMemoryMB},
	} {
		if f.v < 1 {
			add(problem(f.path, "must be at least 1, got %d", f.v))
		}
	}
	if l.MaxConnsPerPeer > l.MaxConns && l.MaxConns >= 1 {
		add(problem("limits.max_conns_per_peer", "must not exceed limits.max_conns (%d), got %d", l.MaxConns, l.MaxConnsPerPeer))
	}
	if l.MaxStreamsPerPeer > l.MaxStreams && l.MaxStreams >= 1 {
		add(problem("limits.max_streams_per_peer", "must not exceed limits.max_streams (%d), got %d", l.MaxStreams, l.MaxStreamsPerPeer))
	}

	if c.Metrics.Listen != "" {
		add(validHostPort("metrics.listen", c.Metrics.Listen))
	}
	add(c.Experiment.validate(c))
	if r := c.Provider.AuditRate; r != 0 && (!(r > 0) || math.IsInf(r, 0) || c.Role != RoleProvider) {
		add(problem("provider.audit_rate", "must be a finite rate > 0 on a provider, got %v", r))
	}

	if c.Role == RoleProvider {
		if c.Provider.MailboxLifetime <= 0 {
			add(problem("provider.mailbox_lifetime", "must be positive, got %v", c.Provider.MailboxLifetime))
		}
		cl := c.Provider.Clients
		for _, f := range []struct {
			key string
			v   int64
		}{
			{"max_streams", int64(cl.MaxStreams)}, {"max_streams_per_client", int64(cl.MaxStreamsPerClient)},
			{"max_streams_per_ip", int64(cl.MaxStreamsPerIP)}, {"max_in_flight", int64(cl.MaxInFlight)},
			{"max_requests", int64(cl.MaxRequests)}, {"reply_mb", int64(cl.ReplyMB)},
			{"first_request_timeout", int64(cl.FirstRequestTimeout)}, {"idle_timeout", int64(cl.IdleTimeout)},
			{"reply_mb_per_client", int64(cl.ReplyMBPerClient)}, {"reply_mb_per_ip", int64(cl.ReplyMBPerIP)},
			{"send_burst", int64(cl.SendBurst)}, {"send_burst_per_ip", int64(cl.SendBurstPerIP)},
		} {
			if f.v < 0 {
				add(problem("provider.clients."+f.key, "must not be negative (0 takes the default)"))
			}
		}
		for _, f := range []struct {
			key string
			v   float64
		}{{"send_rate", cl.SendRate}, {"send_rate_per_ip", cl.SendRatePerIP}} {
			if !(f.v >= 0) || math.IsInf(f.v, 0) {
				add(problem("provider.clients."+f.key, "must be a finite number of packets per second, not negative (0 takes the default), got %v", f.v))
			}
		}
		if c.Provider.MailboxMaxMessages < 0 {
			add(problem("provider.mailbox_max_messages", "must not be negative (0 takes the default)"))
		}
		if c.Provider.MailboxMaxMB < 0 {
			add(problem("provider.mailbox_max_mb", "must not be negative (0 takes the default)"))
		}
		if !strings.HasPrefix(c.Provider.ClientProtocol, "/") {
			add(problem("provider.client_protocol", "must be a libp2p protocol ID starting with /, got %q", c.Provider.ClientProtocol))
		}
	}
	return errors.Join(errs...)
}

// CheckListen reports whether a listen multiaddr is one a node of the role
// can listen on (the check Validate makes for each listen entry).
func CheckListen(addr, role string) error {
	return validListen("listen", addr, role == RoleProvider)
}

// validListen accepts IP or DNS addresses carrying TCP, QUIC v1, or (on
// providers) WebSocket over TCP.
func validListen(path, s string, provider bool) error {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return problem(path, "not a multiaddr %q: %v", s, err)
	}
	var names []string
	for _, p := range a.Protocols() {
		names = append(names, p.Name)
	}
	if len(names) == 0 {
		return problem(path, "empty multiaddr %q", s)
	}
	switch names[0] {
	case "ip4", "ip6", "dns", "dns4", "dns6":
	default:
		return problem(path, "%q must start with /ip4, /ip6 or /dns", s)
	}
	rest := strings.Join(names[1:], "/")
	switch rest {
	case "tcp", "udp/quic-v1":
		return nil
	case "tcp/ws":
		if provider {
			return nil
		}
		return problem(path, "%q: WebSocket listeners are for providers only", s)
	}
	return problem(path, "%q: transport must be /tcp/N, /udp/N/quic-v1 or (providers) /tcp/N/ws", s)
}

func validHostPort(path, s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return problem(path, "must be host:port, got %q", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return problem(path, "port must be 0..65535, got %q", port)
	}
	return nil
}

// validate refuses a misbehaviour outside an experiment: off loopback, or
// without ExperimentEnv=ExperimentConsent in the environment.
func (x Experiment) validate(c *Config) error {
	f := x.CheatDropForwardedFraction
	if f == 0 {
		return nil
	}
	const key = "experiment.cheat_drop_forwarded_fraction"
	if !(f > 0 && f < 1) {
		return problem(key, "must be in [0, 1), got %v", f)
	}
	if c.Role != RoleMix {
		return problem(key, "is for mixes only")
	}
	if os.Getenv(ExperimentEnv) != ExperimentConsent {
		return problem(key, "makes this node cheat; it is for experiments only and refused unless %s=%s is set", ExperimentEnv, ExperimentConsent)
	}
	for _, a := range c.Listen {
		if !strings.HasPrefix(a, "/ip4/127.") && !strings.HasPrefix(a, "/ip6/::1/") {
			return problem(key, "makes this node cheat; it is refused on a node listening on %s (loopback only)", a)
		}
	}
	return nil
}
