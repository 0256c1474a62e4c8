package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sottonet/sotto/internal/localnet"
)

// Fault injection on a network of node processes (docs/RELIABILITY.md).
// Each test says what must hold after its fault.

// pluginPID returns the PID of the child process of node n running
// `sotto plugin NAME`, or 0.
func pluginPID(t *testing.T, n *localnet.Node, name string) int {
	t.Helper()
	parent := n.PID()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut after ')'.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 || f[1] != strconv.Itoa(parent) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(string(cmdline), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "plugin" && args[i+1] == name {
				return pid
			}
		}
	}
	return 0
}

// contactOf starts a receiver on provider prov with state file state just
// long enough to print its contact, and returns the contact.
func contactOf(t *testing.T, prov *localnet.Node, state string) string {
	t.Helper()
	r := startSotto(t, nil, "recv", "--provider", prov.Addr, "--state", state, "--wait", "3s")
	c := r.line(t, 60*time.Second)
	if _, err := r.rest(t, 60*time.Second); err != nil {
		t.Fatalf("recv: %v\n%s", err, r.errText())
	}
	return c
}

// sendAll sends msgs to contact from provider prov, each from its own
// sender process (its own state file), all at once, and fails unless every
// send ends acknowledged within d.
func sendAll(t *testing.T, prov *localnet.Node, dir, contact string, d time.Duration, msgs ...string) {
	t.Helper()
	var wg sync.WaitGroup
	for i, m := range msgs {
		s := startSotto(t, nil, "send", "--provider", prov.Addr, "--state", filepath.Join(dir, fmt.Sprintf("sender-%d-%d.json", time.Now().UnixNano(), i)),
			"--to", contact, "--timeout", d.String(), m)
		wg.Go(func() {
			if _, err := s.rest(t, d+30*time.Second); err != nil {
				t.Errorf("send %q: %v\n%s", m, err, s.errText())
			}
		})
	}
	wg.Wait()
}

// The storage plugin process of a provider is killed (SIGKILL) while
// senders send to a receiver of that provider and the receiver fetches.
// What must hold: every send ends acknowledged (the node retries or the
// sender does; no acknowledgement for a write the plugin lost), the
// receiver gets every message exactly once (none lost, none twice), and
// the provider serves again with a new plugin process (a message sent
// after the kill arrives too).
func TestFaultStoragePluginSIGKILLLosesNoAcknowledgedMessage(t *testing.T) {
	t.Parallel() // a network of its own (localnet_test.go, "Parallel tests")
	ln := clientNet(t)
	provs := ln.Providers()
	dir := t.TempDir()
	state := filepath.Join(dir, "carol.json")
	contact := contactOf(t, provs[1], state)
	const n = 6
	want := map[string]bool{}
	var before, after []string
	for i := range n {
		m := fmt.Sprintf("storage fault message %d", i)
		want[m] = true
		if i < n/2 {
			before = append(before, m)
		} else {
			after = append(after, m)
		}
	}
	recv := startSotto(t, nil, "recv", "--state", state, "--count", strconv.Itoa(n), "--wait", "240s")
	if c := recv.line(t, 60*time.Second); !sameAddress(c, contact) {
		t.Fatalf("the receiver printed another contact")
	}
	old := pluginPID(t, provs[1], "storage-badger")
	if old == 0 {
		t.Fatalf("no storage-badger plugin process under %s (pid %d)", provs[1].Name, provs[1].PID())
	}
	// Half the messages are sent while the plugin is killed mid-stream.
	var wg sync.WaitGroup
	wg.Go(func() { sendAll(t, provs[0], dir, contact, 150*time.Second, before...) })
	time.Sleep(time.Second)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s's storage plugin (pid %d)", provs[1].Name, old)
	wg.Wait()
	var pid int
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if pid = pluginPID(t, provs[1], "storage-badger"); pid != 0 && pid != old {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new storage plugin process 60 s after the kill")
		}
	}
	if !provs[1].Running() {
		t.Fatalf("%s exited when its storage plugin was killed", provs[1].Name)
	}
	// The other half after the restart: the node serves again.
	sendAll(t, provs[0], dir, contact, 150*time.Second, after...)
	got, err := recv.rest(t, 150*time.Second)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	t.Logf("sent %d, acknowledged %d, delivered %d; storage plugin pid %d → %d", n, n, len(got), old, pid)
	eachOnce(t, got, want)
}

// A provider holding messages in a mailbox is killed (SIGKILL, with its
// plugins) and restarted. What must hold: every message acknowledged
// before the kill is fetched after the restart, each once; and a receiver
// that was connected to the provider when it died reconnects by itself
// (no restart of the client) and gets a message sent after the restart.
func TestFaultProviderSIGKILLKeepsMailboxes(t *testing.T) {
	t.Parallel() // a network of its own (localnet_test.go, "Parallel tests")
	ln := clientNet(t)
	provs := ln.Providers()
	dir := t.TempDir()
	carolState := filepath.Join(dir, "carol.json")
	carol := contactOf(t, provs[1], carolState)
	// dave stays connected to the provider across its death.
	dave := startSotto(t, nil, "recv", "--provider", provs[1].Addr, "--state", filepath.Join(dir, "dave.json"), "--count", "1", "--wait", "240s")
	toDave := dave.line(t, 60*time.Second)
	const n = 4
	want := map[string]bool{}
	var msgs []string
	for i := range n {
		m := fmt.Sprintf("held through a SIGKILL %d", i)
		want[m] = true
		msgs = append(msgs, m)
	}
	sendAll(t, provs[0], dir, carol, 120*time.Second, msgs...)
	dave.waitStderr(t, "waiting for messages", 30*time.Second)

	if err := provs[1].Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if err := provs[1].Start(); err != nil {
		t.Fatal(err)
	}
	sendAll(t, provs[0], dir, toDave, 150*time.Second, "to dave after the restart")
	if got, err := dave.rest(t, 150*time.Second); err != nil || len(got) != 1 || got[0] != "to dave after the restart" {
		t.Fatalf("dave (connected across the kill) got %q (%v)\n%s", got, err, dave.errText())
	}
	recv := startSotto(t, nil, "recv", "--state", carolState, "--count", strconv.Itoa(n), "--wait", "120s")
	recv.line(t, 60*time.Second) // the contact
	got, err := recv.rest(t, 150*time.Second)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	t.Logf("acknowledged before the kill %d, fetched after the restart %d", n, len(got))
	eachOnce(t, got, want)
}
