package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/localnet"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

// soakSample is one node's resources at one time: its own process and its
// plugin processes (children) apart.
type soakSample struct {
	at                time.Duration
	goroutines        float64 // the node's go_goroutines
	rss, fds          int     // the node process
	pluginRSS, plugFD int     // its plugin processes together
}

// procStats reads a process's resident set (bytes, from VmRSS) and its
// open descriptors; zeros if it is gone.
func procStats(pid int) (rss, fds int) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			rss = kb << 10
		}
	}
	ents, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	return rss, len(ents)
}

// childrenOf lists the PIDs whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) >= 2 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}

func sampleNode(t *testing.T, n *localnet.Node, at time.Duration) soakSample {
	s := soakSample{at: at}
	s.rss, s.fds = procStats(n.PID())
	for _, c := range childrenOf(n.PID()) {
		r, f := procStats(c)
		s.pluginRSS += r
		s.plugFD += f
	}
	if mf, err := n.Scrape(t.Context()); err == nil {
		s.goroutines = localnet.Value(mf, "go_goroutines")
	}
	return s
}

// Soak bounds: after a warm-up of a quarter of the run (at least 30 s:
// connections, keys and caches settle), no node's figure may end above
// these bounds over its warm-up sample. A leak of a goroutine, descriptor
// or buffer per packet, per connection or per epoch crosses them within
// minutes at the soak's rates; normal jitter (GC, a reconnect) does not.
const (
	soakGoroutineFactor, soakGoroutineSlack = 1.5, 50
	soakFDFactor, soakFDSlack               = 1.5, 32
	soakRSSFactor, soakRSSSlack             = 2.0, 64 << 20
	// A node's plugins (storage-badger and pki-gossip) may grow by what
	// Badger is configured to hold resident: its memory-mapped log (twice
	// the memtable), the memtable's arena and its block cache, plus the
	// slack above. Badger fills them over minutes (a 10-minute soak took
	// the plugins of every node from ~97 to ~275 MiB, the nodes themselves
	// flat); a leak beyond that bound shows in a long soak, not in CI's.
	soakPluginRSSSlack = 3*storagebadger.DefaultMemTableBytes + storagebadger.DefaultCacheBytes + 64<<20
)

// TestSoak runs a network of node processes (2 layers of 2 mixes, 2
// providers) with cover traffic at every node and a client sending a
// message every 10 s to another for SOTTOTEST_SOAK (a duration; unset: the
// test is skipped, so `go test ./...` stays short; CI runs 150s; not
// SOTTO_*: the nodes would read it as config). Every
// 10 s it samples each node's goroutines (/metrics), resident memory and
// open descriptors (/proc), for the node and its plugin processes. What
// must hold: every message sent is acknowledged and delivered once, and no
// node's goroutines, descriptors or memory grow beyond the bounds above.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("SOTTOTEST_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set SOTTOTEST_SOAK=DURATION (e.g. 150s, 1h) to run the soak")
	}
	ln := startNet(t, localnetSoakSpec())
	provs := ln.Providers()
	dir := t.TempDir()
	state := filepath.Join(dir, "carol.json")
	contact := contactOf(t, provs[1], state)
	recv := startSotto(t, nil, "recv", "--state", state, "--wait", (d + 3*time.Minute).String())
	recv.line(t, 60*time.Second)

	start := time.Now()
	warm := max(d/4, 30*time.Second)
	samples := map[string][]soakSample{}
	sample := func() {
		line := ""
		for _, n := range ln.Nodes {
			s := sampleNode(t, n, time.Since(start).Round(time.Second))
			samples[n.Name] = append(samples[n.Name], s)
			line += fmt.Sprintf(" %s %d/%d", n.Name, s.rss>>20, s.pluginRSS>>20)
		}
		if len(samples[ln.Nodes[0].Name])%6 == 1 { // once a minute
			t.Logf("%v RSS MiB node/plugins:%s", time.Since(start).Round(time.Second), line)
		}
	}
	sample()
	want := map[string]bool{}
	sent := 0
	for time.Since(start) < d {
		m := fmt.Sprintf("soak message %d", sent)
		want[m] = true
		sent++
		s := startSotto(t, nil, "send", "--provider", provs[0].Addr, "--state", filepath.Join(dir, "bob.json"),
			"--to", contact, "--timeout", "90s", m)
		if _, err := s.rest(t, 2*time.Minute); err != nil {
			t.Errorf("send %q: %v\n%s", m, err, s.errText())
		}
		if rest := 10*time.Second - time.Since(start)%(10*time.Second); rest > 0 {
			time.Sleep(rest)
		}
		sample()
	}
	if err := recv.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	got, _ := recv.rest(t, 60*time.Second)
	t.Logf("soak %v: %d messages sent, %d delivered", d, sent, len(got))
	eachOnce(t, got, want)

	for _, n := range ln.Nodes {
		ss := samples[n.Name]
		var base soakSample
		for _, s := range ss {
			if s.at <= warm {
				base = s
			}
		}
		last := ss[len(ss)-1]
		var peak soakSample
		for _, s := range ss {
			peak.goroutines = max(peak.goroutines, s.goroutines)
			peak.rss, peak.fds = max(peak.rss, s.rss), max(peak.fds, s.fds)
			peak.pluginRSS, peak.plugFD = max(peak.pluginRSS, s.pluginRSS), max(peak.plugFD, s.plugFD)
		}
		t.Logf("%-10s goroutines %4.0f → %4.0f (peak %4.0f)  fds %3d → %3d (peak %3d)  rss %4d → %4d MiB (peak %4d)  plugins: fds %3d → %3d, rss %4d → %4d MiB",
			n.Name, base.goroutines, last.goroutines, peak.goroutines, base.fds, last.fds, peak.fds,
			base.rss>>20, last.rss>>20, peak.rss>>20, base.plugFD, last.plugFD, base.pluginRSS>>20, last.pluginRSS>>20)
		if last.goroutines > soakGoroutineFactor*base.goroutines+soakGoroutineSlack {
			t.Errorf("%s: goroutines grew from %v to %v", n.Name, base.goroutines, last.goroutines)
		}
		if float64(last.fds) > soakFDFactor*float64(base.fds)+soakFDSlack || float64(last.plugFD) > soakFDFactor*float64(base.plugFD)+soakFDSlack {
			t.Errorf("%s: open descriptors grew from %d (plugins %d) to %d (plugins %d)", n.Name, base.fds, base.plugFD, last.fds, last.plugFD)
		}
		if float64(last.rss) > soakRSSFactor*float64(base.rss)+soakRSSSlack || last.pluginRSS > base.pluginRSS+soakPluginRSSSlack {
			t.Errorf("%s: resident memory grew from %d MiB (plugins %d) to %d MiB (plugins %d)", n.Name, base.rss>>20, base.pluginRSS>>20, last.rss>>20, last.pluginRSS>>20)
		}
	}
}

// localnetSoakSpec is the soak's network: 1-minute epochs, so that a run
// of minutes crosses epoch boundaries (key rotation, replay-tag epochs,
// PKI documents) as well as carrying traffic.
func localnetSoakSpec() localnet.Spec {
	return localnet.Spec{Layers: 2, MixesPerLayer: 2, Providers: 2, EpochPeriod: time.Minute,
		Params: interfaces.NetworkParams{Mu: 20, LambdaP: 5, LambdaL: 1, LambdaD: 1, LambdaM: 1}}
}
