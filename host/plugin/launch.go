package plugin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/sottonet/sotto/interfaces"
)

// command builds the plugin's command line. The process is tied to the
// Plugin's lifetime: Close kills it even while go-plugin's handshake (which
// takes no context) is still waiting for it.
func (p *Plugin) command() *exec.Cmd {
	var cmd *exec.Cmd
	if p.cfg.Builtin != "" {
		cmd = exec.CommandContext(p.life, p.opts.Self, "plugin", p.cfg.Builtin)
	} else {
		cmd = exec.CommandContext(p.life, p.cfg.Path, p.cfg.Args...)
	}
	cmd.Env = append(os.Environ(), p.opts.Env...)
	return cmd
}

func (p *Plugin) what() string {
	if p.cfg.Builtin != "" {
		return fmt.Sprintf("%s plugin %q (built-in %s)", p.cfg.Kind, p.cfg.Name, p.cfg.Builtin)
	}
	return fmt.Sprintf("%s plugin %q (%s)", p.cfg.Kind, p.cfg.Name, p.cfg.Path)
}

// launch starts one plugin process, dispenses the kind and configures it.
// On any failure the process is killed before returning.
func (p *Plugin) launch(ctx context.Context) (*goplugin.Client, any, error) {
	tail := &stderrTail{}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  p.kind.Handshake(),
		Plugins:          goplugin.PluginSet{p.kind.Name: p.kind.GRPCPlugin()},
		Cmd:              p.command(),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           newSlogHclog(p.opts.Logger, p.cfg.Name),
		Stderr:           tail,
		StartTimeout:     p.cfg.StartTimeout,
	})
	fail := func(err error) (*goplugin.Client, any, error) {
		client.Kill()
		return nil, nil, err
	}
	rpc, err := client.Client()
	if err != nil {
		msg := err.Error()
		if strings.Contains(strings.ToLower(msg), "incompatible api version") {
			return fail(fmt.Errorf("%w: %s: host speaks %s, plugin does not: %v", ErrHandshake, p.what(), p.kind, err))
		}
		if t := tail.String(); t != "" {
			return fail(fmt.Errorf("%w: %s: %v; plugin said: %s", ErrHandshake, p.what(), err, lastLine(t)))
		}
		return fail(fmt.Errorf("%w: %s: %v", ErrHandshake, p.what(), err))
	}
	raw, err := rpc.Dispense(p.kind.Name)
	if err != nil {
		return fail(fmt.Errorf("%w: %s: %v", ErrHandshake, p.what(), err))
	}
	conf, ok := raw.(interfaces.HostConfigurer)
	if !ok {
		return fail(fmt.Errorf("%s: shim %T cannot be configured", p.what(), raw))
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	defer cancel()
	if err := conf.ConfigureHost(cctx, p.cfg.RawConfig, p.hostFor()); err != nil {
		return fail(fmt.Errorf("%s: configure: %w", p.what(), err))
	}
	return client, raw, nil
}

// hostFor is the host services offered to this plugin: the slot's share of
// the host KV and the clock.
func (p *Plugin) hostFor() *interfaces.Host {
	h := p.opts.Host
	if h == nil {
		return &interfaces.Host{Slot: p.cfg.Name}
	}
	out := &interfaces.Host{Slot: p.cfg.Name, Clock: h.Clock}
	if h.KV != nil {
		out.KV = interfaces.SlotKV(h.KV, p.cfg.Name)
	}
	return out
}
