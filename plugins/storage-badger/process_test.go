package storagebadger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/storagetest"
)

// servePluginEnv makes the re-executed test binary act as the plugin
// process: exactly what cmd/storage-badger does, without building it.
const servePluginEnv = "STORAGE_BADGER_SERVE_PLUGIN"

// pluginProcess is one storage-badger plugin process as a host sees it.
type pluginProcess struct {
	client *goplugin.Client
	cmd    *exec.Cmd
	store  interfaces.Storage
}

// startPlugin launches the plugin process on dir, dispenses the storage
// kind and configures it, as the host does. The process is stopped when
// the test ends.
func startPlugin(t *testing.T, dir string, sync bool) *pluginProcess {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"dir": dir, "sync_writes": sync, "memtable_bytes": 8 << 20, "cache_bytes": 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), servePluginEnv+"=1")
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  interfaces.StorageKind.Handshake(),
		Plugins:          goplugin.PluginSet{interfaces.StorageKind.Name: interfaces.StorageKind.GRPCPlugin()},
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
		StartTimeout:     time.Minute,
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("starting the plugin process: %v", err)
	}
	v, err := rpc.Dispense(interfaces.StorageKind.Name)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := v.(interfaces.Configurer).Configure(ctx, raw); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return &pluginProcess{client: client, cmd: cmd, store: v.(interfaces.Storage)}
}

// TestConformanceOutOfProcess runs the conformance suite against real
// plugin processes, one per subtest.
func TestConformanceOutOfProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts plugin processes")
	}
	storagetest.Run(t, func(t *testing.T) interfaces.Storage {
		return startPlugin(t, t.TempDir(), false).store
	})
}

func TestPluginRefusesBadConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a plugin process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), servePluginEnv+"=1")
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  interfaces.StorageKind.Handshake(),
		Plugins:          goplugin.PluginSet{interfaces.StorageKind.Name: interfaces.StorageKind.GRPCPlugin()},
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatal(err)
	}
	v, err := rpc.Dispense(interfaces.StorageKind.Name)
	if err != nil {
		t.Fatal(err)
	}
	err = v.(interfaces.Configurer).Configure(t.Context(), []byte(`{"dir":"","sync_writes":true}`))
	if !errors.Is(err, interfaces.ErrInvalidArgument) {
		t.Fatalf("configure with an empty dir: %v, want ErrInvalidArgument", err)
	}
	_, err = v.(interfaces.Storage).ListMailbox(t.Context(), &interfaces.ListMailboxRequest{})
	if !errors.Is(err, interfaces.ErrUnavailable) {
		t.Fatalf("a call to an unconfigured plugin: %v, want ErrUnavailable", err)
	}
}

// TestSIGKILLPluginProcessMidStream kills the plugin process with SIGKILL
// while a host-side writer streams mailbox appends through gRPC, then
// starts a new process on the same directory: every append that was
// acknowledged is there, no batch is half-written, and IDs continue.
func TestSIGKILLPluginProcessMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts plugin processes")
	}
	dir := t.TempDir()
	p := startPlugin(t, dir, true)
	mb := mbox(77)
	const batch = 5
	var (
		mu      sync.Mutex
		acked   []uint64
		callErr error
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			msgs := make([]interfaces.MailboxMessage, batch)
			for i := range msgs {
				msgs[i] = interfaces.MailboxMessage{Mailbox: mb, Payload: []byte(fmt.Sprintf("m%d", i)), Lifetime: time.Hour}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := p.store.AppendMailbox(ctx, &interfaces.AppendMailboxRequest{Messages: msgs})
			cancel()
			mu.Lock()
			if err != nil {
				callErr = err
				mu.Unlock()
				return
			}
			acked = append(acked, resp.IDs...)
			mu.Unlock()
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d appends acknowledged in 30 s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-done
	if callErr == nil {
		t.Fatal("the writer saw no error after the plugin died")
	}
	p.client.Kill()

	q := startPlugin(t, dir, true)
	resp, err := q.store.ListMailbox(t.Context(), &interfaces.ListMailboxRequest{Mailbox: mb, Limit: maxMailboxLimit})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[uint64]bool{}
	for _, e := range resp.Entries {
		stored[e.ID] = true
	}
	for _, id := range acked {
		if !stored[id] {
			t.Fatalf("acknowledged ID %d is gone after SIGKILL (%d acknowledged, %d stored)", id, len(acked), len(stored))
		}
	}
	if len(resp.Entries)%batch != 0 {
		t.Fatalf("%d messages stored: a batch of %d was half-written", len(resp.Entries), batch)
	}
	for i, e := range resp.Entries {
		if e.ID != resp.Entries[0].ID+uint64(i) {
			t.Fatalf("stored IDs have a hole at %d: %d", i, e.ID)
		}
	}
	next, err := q.store.AppendMailbox(t.Context(), &interfaces.AppendMailboxRequest{Messages: []interfaces.MailboxMessage{msg(mb, "after")}})
	if err != nil {
		t.Fatal(err)
	}
	if want := resp.Entries[len(resp.Entries)-1].ID + 1; next.IDs[0] != want {
		t.Fatalf("after restart the next ID is %d, want %d", next.IDs[0], want)
	}
	t.Logf("%d appends acknowledged before SIGKILL, %d stored after restart", len(acked), len(resp.Entries))
}
