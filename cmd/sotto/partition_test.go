package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/plugintest"
	"github.com/sottonet/sotto/internal/localnet"
)

// nftIn runs nft in namespace ns.
func nftIn(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s in %s: %v\n%s", strings.Join(args, " "), ns, err, out)
	}
	return string(out)
}

// joinRoot connects the test's own namespace to the hub's bridge with
// address addr (/24), so that the test scrapes the nodes' metrics and runs
// its clients from where it is.
func (n *netns) joinRoot(t *testing.T, addr string) {
	hub, root := n.prefix+"-hub", n.prefix+"-r"
	ipCmd(t, "link", "add", root, "type", "veth", "peer", "name", "pr", "netns", hub)
	t.Cleanup(func() { exec.Command("ip", "link", "del", root).Run() })
	ipCmd(t, "-n", hub, "link", "set", "pr", "master", "br0")
	ipCmd(t, "-n", hub, "link", "set", "pr", "up")
	ipCmd(t, "addr", "add", addr+"/24", "dev", root)
	ipCmd(t, "link", "set", root, "up")
}

// linkFaults injects faults on the hub's bridge, which every packet between
// two hosts (nodes, and the test's clients) crosses once.
type linkFaults struct {
	t     *testing.T
	hub   string
	ports map[string]string // node name → its bridge port
	netem bool
}

// newLinkFaults prefers netem (tc) for loss and falls back to nft's random
// drop on the bridge: some kernels (this project's sandbox) have no netem
// qdisc ("Specified qdisc kind is unknown") but do have nf_tables.
func newLinkFaults(t *testing.T, hub string, ports map[string]string) *linkFaults {
	f := &linkFaults{t: t, hub: hub, ports: ports}
	probe := exec.Command("ip", "netns", "exec", hub, "tc", "qdisc", "add", "dev", "pr", "root", "netem", "loss", "0%")
	if probe.Run() == nil {
		exec.Command("ip", "netns", "exec", hub, "tc", "qdisc", "del", "dev", "pr", "root").Run()
		f.netem = true
	}
	return f
}

func (f *linkFaults) allPorts() []string {
	out := []string{"pr"}
	for _, p := range f.ports {
		out = append(out, p)
	}
	return out
}

// loss drops pct % of the frames on every link (netem on each bridge port,
// or one nft rule on the bridge's forward hook).
func (f *linkFaults) loss(pct int) {
	if f.netem {
		for _, p := range f.allPorts() {
			ipCmd(f.t, "netns", "exec", f.hub, "tc", "qdisc", "add", "dev", p, "root", "netem", "loss", fmt.Sprintf("%d%%", pct))
		}
		return
	}
	nftIn(f.t, f.hub, "add", "table", "bridge", "loss")
	nftIn(f.t, f.hub, "add chain bridge loss f { type filter hook forward priority 0; }")
	nftIn(f.t, f.hub, "add", "rule", "bridge", "loss", "f", "numgen", "random", "mod", "100", "<", strconv.Itoa(pct), "counter", "drop")
}

// lossEnd removes the loss and returns the frames it dropped (-1 under
// netem, which does not count here).
func (f *linkFaults) lossEnd() int {
	if f.netem {
		for _, p := range f.allPorts() {
			ipCmd(f.t, "netns", "exec", f.hub, "tc", "qdisc", "del", "dev", p, "root")
		}
		return -1
	}
	out := nftIn(f.t, f.hub, "list", "table", "bridge", "loss")
	nftIn(f.t, f.hub, "delete", "table", "bridge", "loss")
	m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(out)
	if m == nil {
		f.t.Fatalf("no counter in the loss rule:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// cut partitions the named nodes: every frame to or from their ports is
// dropped silently (no reset, no unreachable: as a cable pulled).
func (f *linkFaults) cut(names ...string) {
	nftIn(f.t, f.hub, "add", "table", "bridge", "cut")
	nftIn(f.t, f.hub, "add chain bridge cut f { type filter hook forward priority -10; }")
	for _, n := range names {
		nftIn(f.t, f.hub, "add", "rule", "bridge", "cut", "f", "iifname", f.ports[n], "drop")
		nftIn(f.t, f.hub, "add", "rule", "bridge", "cut", "f", "oifname", f.ports[n], "drop")
	}
}

func (f *linkFaults) heal() { nftIn(f.t, f.hub, "delete", "table", "bridge", "cut") }

// loopsLost sums sotto_mix_loops_lost_total over the mixes not named in
// cut (whose metrics the test cannot reach either).
func loopsLost(t *testing.T, mixes []*localnet.Node, cut ...string) float64 {
	t.Helper()
	var sum float64
	for _, m := range mixes {
		if slices.Contains(cut, m.Name) {
			continue
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		mf, err := m.Scrape(ctx)
		cancel()
		if err != nil {
			t.Fatalf("scrape %s: %v", m.Name, err)
		}
		sum += localnet.Value(mf, "sotto_mix_loops_lost_total")
	}
	return sum
}

// layersOf returns the mixes of each layer of epoch e's document as each
// mix logged it ("PKI document" … layer=L): the document deals mixes to
// layers by a hash of their identities, whatever their names say.
func layersOf(t *testing.T, mixes []*localnet.Node, e uint64, nodes int) map[int][]*localnet.Node {
	t.Helper()
	re := regexp.MustCompile(fmt.Sprintf(`msg="PKI document" epoch=%d hash=\S+ nodes=%d layer=(\d+)`, e, nodes))
	out := map[int][]*localnet.Node{}
	for _, m := range mixes {
		b, err := os.ReadFile(m.Log())
		if err != nil {
			t.Fatal(err)
		}
		all := re.FindAllStringSubmatch(string(b), -1)
		if all == nil {
			t.Fatalf("%s logged no complete document for epoch %d", m.Name, e)
		}
		l, _ := strconv.Atoi(all[len(all)-1][1])
		out[l] = append(out[l], m)
	}
	return out
}

func nodeNames(ns []*localnet.Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

// A network partitioned and on lossy links, each node in a network
// namespace of its own (veth pairs on one bridge; docs/RELIABILITY.md):
// 2 layers × 2 mixes (the document deals them to layers by a hash, so the
// test reads each mix's layer from its log) and 2 providers; the test's clients reach the
// providers over the bridge too. Root only (skipped with a message
// elsewhere; under CI=true a missing root, ip or nft fails the test).
// Loss is netem's where the kernel has it, else nft's random drop on the
// bridge (this project's sandbox has no netem). Must hold:
//   - lossy links (10% of frames dropped on every link): every message
//     sent is acknowledged and delivered exactly once;
//   - one mix of layer 0 cut off (its layer keeps a spare): messages sent
//     meanwhile are acknowledged and delivered once (paths route around
//     it), and mix loops notice (sotto_mix_loops_lost_total grows);
//   - the whole of layer 1 cut off (no path exists): nothing is
//     acknowledged while it lasts (the senders still wait after 10 s), the
//     mix loops notice, and once healed every message is acknowledged and
//     delivered exactly once: delivery stops, nothing acknowledged is lost.
func TestFaultPartitionedLayerAndLossyLinks(t *testing.T) {
	t.Parallel() // a network of its own (localnet_test.go, "Parallel tests")
	if testing.Short() {
		t.Skip("starts 6 node processes; skipped with -short")
	}
	if os.Geteuid() != 0 {
		plugintest.SkipUnlessCI(t, "needs root: it builds a network namespace per node with `ip netns` (CI runs it as root)")
	}
	for _, c := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(c); err != nil {
			plugintest.SkipUnlessCI(t, "needs "+c+" (iproute2, nftables)")
		}
	}
	names := []string{"mix-1-1", "mix-1-2", "mix-2-1", "mix-2-2", "provider-1", "provider-2"}
	var addrs []string
	for i := range names {
		addrs = append(addrs, fmt.Sprintf("10.77.0.%d", i+1))
	}
	nn := newNetns(t, addrs)
	nn.joinRoot(t, "10.77.0.254")
	ports := map[string]string{}
	for i, n := range names {
		ports[n] = fmt.Sprintf("p%d", i+1)
	}
	faults := newLinkFaults(t, nn.prefix+"-hub", ports)
	method := "nft random drop on the bridge (no netem in this kernel)"
	if faults.netem {
		method = "netem on every bridge port"
	}
	t.Logf("loss by %s", method)

	// Ten-minute epochs: the layers the document deals stay the same
	// through the test.
	ln := startNet(t, localnet.Spec{Layers: 2, MixesPerLayer: 2, Providers: 2, EpochPeriod: 10 * time.Minute,
		Params: interfaces.NetworkParams{Mu: 20, LambdaP: 5, LambdaL: 1, LambdaD: 1, LambdaM: 1},
		Host: func(name string) (string, []string) {
			for i, n := range names {
				if n == name {
					return addrs[i], []string{"ip", "netns", "exec", nn.hosts[addrs[i]]}
				}
			}
			t.Errorf("no host for %s", name)
			return "", nil
		}})
	provs, mixes := ln.Providers(), ln.Mixes()
	layers := layersOf(t, mixes, ln.Clock.Now(), len(names))
	if len(layers[0]) != 2 || len(layers[1]) != 2 {
		t.Fatalf("layers %v, want two mixes in each", layers)
	}
	spare, layer := layers[0][0].Name, nodeNames(layers[1])
	t.Logf("layer 0: %v, layer 1: %v", nodeNames(layers[0]), layer)
	dir := t.TempDir()
	state := filepath.Join(dir, "carol.json")
	carol := contactOf(t, provs[1], state)
	var all []string
	send := func(d time.Duration, msgs ...string) {
		all = append(all, msgs...)
		sendAll(t, provs[0], dir, carol, d, msgs...)
	}

	// Lossy links.
	faults.loss(10)
	start := time.Now()
	send(120*time.Second, "over lossy links 0", "over lossy links 1", "over lossy links 2")
	dropped := faults.lossEnd()
	t.Logf("10%% loss: 3 sent, 3 acknowledged in %v; %d frames dropped", time.Since(start).Round(time.Second), dropped)
	if !faults.netem && dropped == 0 {
		t.Errorf("the loss rule dropped no frame")
	}

	// One mix of layer 1 cut off; its layer keeps a spare.
	lost0 := loopsLost(t, mixes, spare)
	faults.cut(spare)
	start = time.Now()
	send(150*time.Second, "around a cut mix 0", "around a cut mix 1", "around a cut mix 2")
	spareTook := time.Since(start)
	for deadline := time.Now().Add(30 * time.Second); loopsLost(t, mixes, spare) == lost0; time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no mix loop counted lost within 30 s of %s being cut off", spare)
		}
	}
	lost1 := loopsLost(t, mixes, spare)
	faults.heal()
	t.Logf("%s (layer 0) cut: 3 sent, 3 acknowledged in %v; mix loops lost %.0f → %.0f", spare, spareTook.Round(time.Second), lost0, lost1)

	// The whole of layer 1 cut off: no path.
	lost1 = loopsLost(t, mixes, layer...)
	faults.cut(layer...)
	cutAt := time.Now()
	const n = 2
	var senders []*sottoProc
	for i := range n {
		m := fmt.Sprintf("across a partitioned layer %d", i)
		all = append(all, m)
		senders = append(senders, startSotto(t, nil, "send", "--provider", provs[0].Addr,
			"--state", filepath.Join(dir, fmt.Sprintf("partition-%d.json", i)), "--to", carol, "--timeout", "240s", m))
	}
	for deadline := time.Now().Add(30 * time.Second); loopsLost(t, mixes, layer...) == lost1; time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no mix loop counted lost within 30 s of layer 1 being cut off")
		}
	}
	time.Sleep(time.Until(cutAt.Add(10 * time.Second)))
	for _, s := range senders {
		select {
		case err := <-s.done:
			t.Fatalf("a send ended while layer 1 was cut off (err %v):\n%s", err, s.errText())
		default:
		}
	}
	lost2 := loopsLost(t, mixes, layer...)
	faults.heal()
	healed := time.Now()
	for _, s := range senders {
		if _, err := s.rest(t, 200*time.Second); err != nil {
			t.Fatalf("send after the heal: %v\n%s", err, s.errText())
		}
	}
	t.Logf("layer 1 %v cut for %v: %d sent, 0 acknowledged while cut, %d acknowledged %v after the heal; mix loops lost %.0f → %.0f",
		layer, healed.Sub(cutAt).Round(time.Second), n, n, time.Since(healed).Round(time.Second), lost1, lost2)

	// Every message, once.
	recv := startSotto(t, nil, "recv", "--state", state, "--count", strconv.Itoa(len(all)), "--wait", "120s")
	recv.line(t, 60*time.Second)
	got, err := recv.rest(t, 150*time.Second)
	if err != nil {
		t.Fatalf("recv: %v\n%s", err, recv.errText())
	}
	want := map[string]bool{}
	for _, m := range all {
		want[m] = true
	}
	eachOnce(t, got, want)
	t.Logf("sent %d, acknowledged %d, delivered %d, each once", len(all), len(all), len(got))
}
