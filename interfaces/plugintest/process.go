package plugintest

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/sottonet/sotto/interfaces"
)

// Build compiles the main package pkg (an import path, or a directory
// relative to the test's working directory) into a temporary directory and
// returns the executable's path: a plugin author's own binary, built the
// way it ships.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// Process starts cmd as a plugin of kind k the way a Sotto host does (the
// kind's handshake, gRPC, the kind's cookie in the environment), dispenses
// the kind, configures it with rawConfig and returns the host-side shim,
// which implements the kind's interface. The process is killed when the
// test ends. A configuration the plugin refuses fails the test; use
// StartProcess to see the error instead.
func Process(t testing.TB, k *interfaces.Kind, cmd *exec.Cmd, rawConfig []byte) any {
	t.Helper()
	v, err := StartProcess(t, k, cmd, rawConfig)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// StartProcess is Process returning the start or Configure error.
func StartProcess(t testing.TB, k *interfaces.Kind, cmd *exec.Cmd, rawConfig []byte) (any, error) {
	t.Helper()
	return StartProcessWithHost(t, k, cmd, rawConfig, nil)
}

// ProcessWithHost is Process offering the plugin host services, as a node
// does: h.KV is served to the plugin over go-plugin's broker (a node
// offers each slot its own share of its Storage; pass an
// interfaces/memkv.New() or a SlotKV of one), h.Clock its epoch clock.
// The host KV outlives the process, so a test restarts a plugin on its
// state by starting the binary again with the same h.
func ProcessWithHost(t testing.TB, k *interfaces.Kind, cmd *exec.Cmd, rawConfig []byte, h *interfaces.Host) any {
	t.Helper()
	v, err := StartProcessWithHost(t, k, cmd, rawConfig, h)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// StartProcessWithHost is ProcessWithHost returning the start or
// Configure error.
func StartProcessWithHost(t testing.TB, k *interfaces.Kind, cmd *exec.Cmd, rawConfig []byte, h *interfaces.Host) (any, error) {
	t.Helper()
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  k.Handshake(),
		Plugins:          plugin.PluginSet{k.Name: k.GRPCPlugin()},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
		StartTimeout:     time.Minute,
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		return nil, err
	}
	v, err := rpc.Dispense(k.Name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := v.(interfaces.HostConfigurer).ConfigureHost(ctx, rawConfig, h); err != nil {
		return nil, err
	}
	return v, nil
}
