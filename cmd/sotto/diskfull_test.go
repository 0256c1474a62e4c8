package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/plugintest"
	"github.com/sottonet/sotto/internal/localnet"
)

// freeOn is the free space of the filesystem under dir.
func freeOn(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// A provider whose disk fills up, through the real node, plugin and client
// processes (docs/RELIABILITY.md). As root the test mounts a 96 MiB tmpfs
// and puts provider-2's storage-badger directory on it (8 MiB memtable, so
// the plugin keeps min_free_bytes = 48 MiB free); elsewhere, or if the
// mount is refused, it is skipped with a message. Two messages to carol
// (mailbox at provider-2) are acknowledged first; then a filler file
// leaves 40 MiB free, and bob (on provider-1) sends carol a message while
// dave (on provider-2) sends alice (on provider-1) one. What must hold:
//   - while the disk is full, deliveries into provider-2 are refused
//     (its storage refuses replay tags and appends with "disk nearly
//     full", counted in sotto_packets_dropped_total) and dave's sends are
//     refused with a clear reply ("busy: storage unavailable"), which his
//     client logs; neither message is acknowledged (the senders are still
//     waiting after 10 s): nothing is acknowledged that was not stored;
//   - the node and its storage plugin keep running, the same process (no
//     crash on the full disk, and no restart: the host once took the
//     plugin's own "unavailable" answer for a dead plugin and restarted
//     it every second);
//   - once the filler is removed, both sends are acknowledged by
//     themselves, and carol receives her three messages and alice hers,
//     each exactly once.
func TestFaultProviderDiskFullRefusesAndRecovers(t *testing.T) {
	t.Parallel() // a network of its own (localnet_test.go, "Parallel tests")
	if testing.Short() {
		t.Skip("starts node processes; skipped with -short")
	}
	mnt := plugintest.SmallDisk(t, "96m")
	others := t.TempDir()
	ln := startNet(t, localnet.Spec{Layers: 2, MixesPerLayer: 1, Providers: 2, EpochPeriod: time.Minute,
		Params: interfaces.NetworkParams{Mu: 20, LambdaP: 5, LambdaL: 1, LambdaD: 1, LambdaM: 1},
		Storage: func(name string) (string, map[string]any) {
			if name == "provider-2" {
				return "storage-badger", map[string]any{"dir": filepath.Join(mnt, "badger"),
					"memtable_bytes": 8 << 20, "max_value_bytes": 64 << 10}
			}
			return "storage-badger", map[string]any{"dir": filepath.Join(others, name)}
		}})
	provs := ln.Providers()
	full := provs[1]
	dir := t.TempDir()
	carolState, aliceState := filepath.Join(dir, "carol.json"), filepath.Join(dir, "alice.json")
	carol := contactOf(t, full, carolState)
	alice := contactOf(t, provs[0], aliceState)

	before := []string{"stored before the disk filled 0", "stored before the disk filled 1"}
	sendAll(t, provs[0], dir, carol, 120*time.Second, before...)

	plugin := pluginPID(t, full, "storage-badger")
	filler := filepath.Join(mnt, "filler")
	free := freeOn(t, mnt)
	if err := os.WriteFile(filler, make([]byte, free-40<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s's storage filesystem: %d MiB free of 96 MiB (min_free_bytes 48 MiB)", full.Name, freeOn(t, mnt)>>20)
	fullAt := time.Now()

	const toCarol, toAlice = "sent to a full provider", "sent from a full provider"
	bob := startSotto(t, nil, "send", "--provider", provs[0].Addr, "--state", filepath.Join(dir, "bob.json"),
		"--to", carol, "--timeout", "240s", toCarol)
	dave := startSotto(t, nil, "send", "--provider", full.Addr, "--state", filepath.Join(dir, "dave.json"),
		"--to", alice, "--timeout", "240s", toAlice)

	// Deliveries into the full provider are refused and counted.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if metric(t, full, "sotto_packets_dropped_total", "reason=replay_store")+
			metric(t, full, "sotto_packets_dropped_total", "reason=storage") > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s dropped nothing for its storage within 60 s of the disk filling", full.Name)
		}
	}
	// dave's sends are refused with a reply that says why.
	dave.waitStderr(t, "storage unavailable", 60*time.Second)
	if n := metric(t, full, "sotto_provider_requests_total", "op=send", "result=busy"); n == 0 {
		t.Errorf("%s counted no send refused as busy", full.Name)
	}
	logb, _ := os.ReadFile(full.Log())
	if !strings.Contains(string(logb), "disk nearly full") {
		t.Errorf("%s's log does not say its disk is nearly full", full.Name)
	}
	// Nothing acknowledged that was not stored: after 10 s on the full
	// disk both senders still wait for their acknowledgement.
	time.Sleep(time.Until(fullAt.Add(10 * time.Second)))
	for _, s := range []*sottoProc{bob, dave} {
		select {
		case err := <-s.done:
			t.Fatalf("a send ended while the disk was full (err %v):\n%s", err, s.errText())
		default:
		}
	}
	if pid := pluginPID(t, full, "storage-badger"); !full.Running() || pid != plugin {
		b, _ := os.ReadFile(full.Log())
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "slot=storage") && !strings.Contains(l, "fetching for a downstream") && !strings.Contains(l, "client request failed") {
				lines = append(lines, l)
			}
		}
		t.Fatalf("%s or its storage plugin (pid %d) died or was restarted on the full disk:\n%s", full.Name, plugin, strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
	dropped := metric(t, full, "sotto_packets_dropped_total", "reason=replay_store") + metric(t, full, "sotto_packets_dropped_total", "reason=storage")
	busy := metric(t, full, "sotto_provider_requests_total", "op=send", "result=busy")

	// Space returns: both sends finish by themselves, and each message
	// arrives once.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	for _, s := range []*sottoProc{bob, dave} {
		if _, err := s.rest(t, 200*time.Second); err != nil {
			t.Fatalf("send after space returned: %v\n%s", err, s.errText())
		}
	}
	recovered := time.Since(freed)
	recv := startSotto(t, nil, "recv", "--state", carolState, "--count", "3", "--wait", "120s")
	recv.line(t, 60*time.Second)
	got, err := recv.rest(t, 150*time.Second)
	if err != nil {
		t.Fatalf("carol: %v\n%s", err, recv.errText())
	}
	eachOnce(t, got, map[string]bool{before[0]: true, before[1]: true, toCarol: true})
	recvA := startSotto(t, nil, "recv", "--state", aliceState, "--count", "1", "--wait", "120s")
	recvA.line(t, 60*time.Second)
	gotA, err := recvA.rest(t, 150*time.Second)
	if err != nil {
		t.Fatalf("alice: %v\n%s", err, recvA.errText())
	}
	eachOnce(t, gotA, map[string]bool{toAlice: true})
	t.Logf("sent 4, acknowledged 4 (2 before the disk filled, 2 only after space returned, %v after), delivered %d, each once; "+
		"on the full disk: %.0f packets dropped for storage at %s, %.0f client sends refused busy",
		recovered.Round(time.Second), len(got)+len(gotA), dropped, full.Name, busy)
}
