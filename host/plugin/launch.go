package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

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
	if p.reattach != nil {
		return fmt.Sprintf("%s plugin %q (reattached to pid %d)", p.cfg.Kind, p.cfg.Name, p.reattach.Pid)
	}
	if p.cfg.Builtin != "" {
		return fmt.Sprintf("%s plugin %q (built-in %s)", p.cfg.Kind, p.cfg.Name, p.cfg.Builtin)
	}
	return fmt.Sprintf("%s plugin %q (%s)", p.cfg.Kind, p.cfg.Name, p.cfg.Path)
}

// proc is one running plugin process as go-plugin holds it.
type proc struct {
	client     *goplugin.Client
	rpc        goplugin.ClientProtocol
	reattached bool // a debug-mode process the host did not start
}

// kill stops the process: gracefully, then by force. go-plugin's Kill
// leaves a reattached debug-mode process (and the connection to it) alone,
// so that one is asked to stop over the connection, which is then closed.
func (pr *proc) kill() {
	if pr == nil {
		return
	}
	if pr.reattached && pr.rpc != nil {
		_ = pr.rpc.Close()
		for i := 0; i < 100 && !pr.client.Exited(); i++ {
			time.Sleep(50 * time.Millisecond)
		}
	}
	pr.client.Kill()
}

// launch starts one plugin process (or attaches to a debug-mode one),
// dispenses the kind and configures it. On any failure the process is
// killed before returning.
func (p *Plugin) launch(ctx context.Context) (*proc, any, error) {
	tail := &stderrTail{}
	logger := newSlogHclog(p.opts.Logger, p.cfg.Name)
	cc := &goplugin.ClientConfig{
		HandshakeConfig:  p.kind.Handshake(),
		Plugins:          goplugin.PluginSet{p.kind.Name: p.kind.GRPCPlugin()},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           logger,
		Stderr:           tail,
		SyncStdout:       &lineLogger{h: logger, stream: "stdout"},
		SyncStderr:       &lineLogger{h: logger, stream: "stderr"},
		StartTimeout:     p.cfg.StartTimeout,
	}
	if p.reattach != nil {
		cc.Reattach = p.reattach
	} else {
		if err := p.checkSum(); err != nil {
			return nil, nil, err
		}
		cc.Cmd = p.command()
	}
	pr := &proc{client: goplugin.NewClient(cc), reattached: p.reattach != nil}
	fail := func(err error) (*proc, any, error) {
		pr.kill()
		return nil, nil, err
	}
	rpc, err := pr.client.Client()
	if err != nil {
		// Kill waits for go-plugin's stderr reader to finish, so tail holds
		// everything the plugin said before it exited: reading it earlier
		// races with that goroutine and loses the explanation.
		pr.kill()
		msg := err.Error()
		if strings.Contains(strings.ToLower(msg), "incompatible api version") {
			return fail(fmt.Errorf("%w: %s: host speaks %s, plugin does not: %v", ErrHandshake, p.what(), p.kind, err))
		}
		if t := tail.String(); t != "" {
			// What the plugin said is the explanation; go-plugin's own
			// paragraph of likely causes would bury it.
			first, _, _ := strings.Cut(msg, "\n")
			return fail(fmt.Errorf("%w: %s: %s; plugin said: %s", ErrHandshake, p.what(), strings.TrimSuffix(strings.TrimSpace(first), ":"), lastLine(t)))
		}
		return fail(fmt.Errorf("%w: %s: %v", ErrHandshake, p.what(), err))
	}
	pr.rpc = rpc
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
	var info interfaces.PluginInfo
	if r, ok := raw.(interfaces.Reporter); ok {
		info = r.Reported()
	}
	p.setInfo(info)
	return pr, raw, nil
}

// ErrChecksum: a plugin executable's SHA-256 is not the one its config
// pins. The host refuses to start it.
var ErrChecksum = errors.New("plugin executable checksum mismatch")

// checkSum hashes the executable a pinned slot is about to start.
func (p *Plugin) checkSum() error {
	if p.cfg.SHA256 == "" {
		return nil
	}
	f, err := os.Open(p.cfg.Path)
	if err != nil {
		return fmt.Errorf("%s: checking its sha256: %w", p.what(), err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%s: checking its sha256: %w", p.what(), err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(p.cfg.SHA256) {
		return fmt.Errorf("%w: %s: the file has sha256 %s, the config pins %s; refusing to start it",
			ErrChecksum, p.what(), got, strings.ToLower(p.cfg.SHA256))
	}
	return nil
}

// parseReattach reads a debug-mode plugin's reattach JSON (see
// Config.Reattach) into go-plugin's form.
func parseReattach(s string, k *interfaces.Kind) (*goplugin.ReattachConfig, error) {
	var r struct {
		Kind            string `json:"kind"`
		ProtocolVersion int    `json:"protocol_version"`
		Network         string `json:"network"`
		Addr            string `json:"addr"`
		Pid             int    `json:"pid"`
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: reattach: %v (want the JSON a plugin started with %s=1 prints)", ErrConfig, err, interfaces.DebugEnv)
	}
	if r.Kind != "" && r.Kind != k.Name {
		return nil, fmt.Errorf("%w: reattach: the running plugin serves kind %q, the slot is of kind %q", ErrHandshake, r.Kind, k.Name)
	}
	if r.ProtocolVersion == 0 {
		r.ProtocolVersion = int(k.ProtocolVersion)
	}
	var addr net.Addr
	var err error
	switch r.Network {
	case "unix":
		addr, err = net.ResolveUnixAddr("unix", r.Addr)
	case "tcp", "tcp4", "tcp6":
		addr, err = net.ResolveTCPAddr(r.Network, r.Addr)
	default:
		err = fmt.Errorf("network %q, want unix or tcp", r.Network)
	}
	if err != nil || r.Pid <= 0 {
		return nil, fmt.Errorf("%w: reattach: address %s %q, pid %d: %v", ErrConfig, r.Network, r.Addr, r.Pid, err)
	}
	return &goplugin.ReattachConfig{
		Protocol: goplugin.ProtocolGRPC, ProtocolVersion: r.ProtocolVersion,
		Addr: addr, Pid: r.Pid, Test: true,
	}, nil
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
