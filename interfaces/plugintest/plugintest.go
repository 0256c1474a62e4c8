// Package plugintest wires a plugin implementation through a real
// go-plugin gRPC connection inside the test process, so a kind's
// conformance suite can run over the wire without building a binary.
// Every kind's test helpers use it (see storagetest.OverGRPC).
package plugintest

import (
	"testing"

	"github.com/hashicorp/go-plugin"

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
