// Package plugintest wires a plugin implementation through a real
// go-plugin gRPC connection inside the test process, so a kind's
// conformance suite can run over the wire without building a binary.
// Every kind's test helpers use it (see storagetest.OverGRPC).
package plugintest

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/sottonet/sotto/interfaces"
)

// GRPC serves impl as kind k on a go-plugin gRPC server in this process,
// connects a go-plugin client to it over a Unix socket, and returns the
// dispensed host-side shim (which implements the kind's interface). The
// connection and server are closed when the test ends; impl is not.
func GRPC(t testing.TB, k *interfaces.Kind, impl any) any {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{k.Name: k.ServerPlugin(impl)})
	t.Cleanup(func() {
		// Server first: closing the client first sends a Shutdown RPC that
		// stops the server concurrently with this Stop (a race in go-plugin).
		server.Stop()
		_ = client.Close()
	})
	v, err := client.Dispense(k.Name)
	if err != nil {
		t.Fatalf("dispense %s: %v", k, err)
	}
	return v
}

// Conn serves impl as kind k like GRPC, and returns the raw gRPC client
// connection instead of the dispensed shim: for tests that speak the wire
// contract itself (fuzzing a plugin's server with arbitrary request bytes,
// a non-Go client's exchange).
func Conn(t testing.TB, k *interfaces.Kind, impl any) *grpc.ClientConn {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{k.Name: k.ServerPlugin(impl)})
	t.Cleanup(func() {
		server.Stop()
		_ = client.Close()
	})
	return client.Conn
}

// Configure serves p in this process the way its plugin binary would be
// served (its factory runs when the host configures it), configures it
// from the host side with rawConfig and the host services h (nil: none),
// and returns the dispensed shim, which implements the kind's interface.
// It is the in-process twin of Process: the same path through Configure,
// without building a binary. Everything is closed when the test ends.
func Configure(t testing.TB, p interfaces.Plugin, rawConfig []byte, h *interfaces.Host) (any, error) {
	t.Helper()
	sp := p.ServePlugin()
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{p.Kind.Name: sp})
	t.Cleanup(func() {
		server.Stop()
		_ = client.Close()
		if c, ok := sp.(interface{ Close() error }); ok {
			_ = c.Close()
		}
	})
	v, err := client.Dispense(p.Kind.Name)
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
