package plugin

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/messagingtest"
)

// The messaging suite against the reference plugin as separate processes:
// each user is a messaging-ratchet process with its own Badger store, and
// a restart is a new process on the same store.
func TestMessagingSuiteOutOfProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "messaging-ratchet")
	build := exec.Command("go", "build", "-o", bin, "github.com/sottonet/sotto/examples/messaging-ratchet/cmd/messaging-ratchet")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	messagingtest.Run(t, func(t *testing.T) messagingtest.Users {
		return &procUsers{bin: bin, dir: t.TempDir(), procs: map[interfaces.Messaging]*Plugin{}}
	})
}

type procUsers struct {
	bin, dir string
	mu       sync.Mutex
	procs    map[interfaces.Messaging]*Plugin
}

func (u *procUsers) Open(t *testing.T, name string) interfaces.Messaging {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"storage": map[string]any{"dir": filepath.Join(u.dir, name), "sync_writes": false}})
	p, err := Start(t.Context(), Config{Name: name, Kind: "messaging", Path: u.bin, RawConfig: raw}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := p.Messaging()
	u.mu.Lock()
	u.procs[m] = p
	u.mu.Unlock()
	t.Cleanup(func() { u.Close(t, m) })
	return m
}

func (u *procUsers) Close(t *testing.T, m interfaces.Messaging) {
	u.mu.Lock()
	p := u.procs[m]
	delete(u.procs, m)
	u.mu.Unlock()
	if p != nil {
		_ = p.Close()
	}
}
