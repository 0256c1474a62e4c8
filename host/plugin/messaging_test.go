package plugin

import (
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
	"github.com/sottonet/sotto/interfaces/messagingtest"
)

// The messaging suite against the reference plugin as separate processes:
// each user is a msg-ratchet process whose state lives in the host
// KV the loader offers it over the broker, and a restart is a new process
// on the same host KV.
func TestMessagingSuiteOutOfProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "msg-ratchet")
	build := exec.Command("go", "build", "-o", bin, "github.com/sottonet/sotto/plugins/msg-ratchet/cmd/msg-ratchet")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	messagingtest.Run(t, func(t *testing.T) messagingtest.Users {
		return &procUsers{bin: bin, kvs: map[string]interfaces.KV{}, procs: map[interfaces.Messaging]*Plugin{}}
	})
}

type procUsers struct {
	bin   string
	mu    sync.Mutex
	kvs   map[string]interfaces.KV
	procs map[interfaces.Messaging]*Plugin
}

func (u *procUsers) Open(t *testing.T, name string) interfaces.Messaging {
	t.Helper()
	u.mu.Lock()
	kv, ok := u.kvs[name]
	if !ok {
		kv = memkv.New()
		u.kvs[name] = kv
	}
	u.mu.Unlock()
	p, err := Start(t.Context(), Config{Name: "messaging", Kind: "messaging", Path: u.bin}, Options{Host: &interfaces.Host{KV: kv}})
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
