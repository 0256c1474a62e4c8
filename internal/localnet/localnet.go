// Package localnet runs a Sotto network on 127.0.0.1: every node its own
// `sotto node` process (the same binary), with the built-in gossip PKI and
// Badger storage plugins, keys and state in a temporary directory, and a
// short epoch. Admission to the PKI is on: by default the network has an
// operator trust root that endorses every node it starts. `sotto demo` and
// the tests that need real node processes use it.
package localnet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/keystore"
	"github.com/sottonet/sotto/interfaces"
	pkigossip "github.com/sottonet/sotto/plugins/pki-gossip"
)

// Spec describes a network.
type Spec struct {
	// Layers × MixesPerLayer mixes and Providers providers.
	Layers, MixesPerLayer, Providers int
	// Params are the network parameters; Hops and Layers are set from
	// Layers, EpochPeriod from EpochPeriod. Zero PayloadLen means 2048.
	Params interfaces.NetworkParams
	// EpochPeriod is the epoch length (default 2 minutes).
	EpochPeriod time.Duration
	// Dir holds every node's data and logs; it must exist.
	Dir string
	// Binary is the sotto executable, run as `Binary node --config ...`,
	// with Env added to its environment.
	Binary string
	Env    []string
	// Network names the network (default "localnet").
	Network string
	// Logger receives the network's progress (not the nodes' logs, which go
	// to DIR/NAME/node.log). Default: discard.
	Logger *slog.Logger
	// Admission is the gossip PKI's admission policy: "endorsed" (the
	// default: Start makes an operator trust root and endorses every node
	// it starts), "open" (a proof of work per identity per epoch, priced
	// by Open) or "none".
	Admission string
	// Open prices admission under "open"; zero fields take the plugin's
	// defaults (seconds of work per node and epoch: see its README).
	Open pkigossip.OpenPolicy
	// ProviderAccounting, if set, is the providers' accounting plugin slot
	// as the node config takes it (e.g. {"builtin": "pay-blindsig",
	// "config": {...}}); nil: providers charge nothing.
	ProviderAccounting map[string]any
	// MixAccounting, if set, is the mixes' accounting plugin slot (e.g.
	// {"builtin": "accounting-free"}): a mix charges nobody, but the
	// plugin's ledger counts the work the mix reports each epoch.
	MixAccounting map[string]any
	// Storage, if set, gives the storage slot of the node named name: a
	// builtin plugin and its config (storage-postgres with a schema per
	// node, say). Nil: each node's own storage-badger directory.
	Storage func(name string) (builtin string, config map[string]any)
	// CheatingMix, if set, names a mix (e.g. "mix-2-1") that drops
	// CheatDropFraction of the packets it should forward while counting
	// them as forwarded (host/config's Experiment; Start gives the nodes
	// the consent it needs): the secret shopper's experiments.
	CheatingMix       string
	CheatDropFraction float64
	// AuditRate, if positive, makes every provider a secret-shopper
	// auditor sending probes at this rate (host/config's
	// provider.audit_rate).
	AuditRate float64
	// Host, if set, puts the node named name on a host of its own: ip is
	// the address its node, PKI member and metrics listen on (default
	// 127.0.0.1), and wrap a command its process runs under, as in
	// `ip netns exec NS`: the fault tests' network namespaces.
	Host func(name string) (ip string, wrap []string)
}

// endorsementLifetime is how long the operator's endorsements of a local
// network's nodes last: far longer than any demo or test runs.
const endorsementLifetime = 7 * 24 * time.Hour

// Node is one node process.
type Node struct {
	Name   string
	Role   string // "mix" or "provider"
	Dir    string
	Config string // path of its node.yaml
	ID     [32]byte
	PeerID peer.ID
	Addr   string // libp2p multiaddr with /p2p/
	// WSAddr is a provider's WebSocket multiaddr with /p2p/ (the client
	// protocol for browsers); "" on mixes.
	WSAddr  string
	Metrics string // host:port of /metrics
	log     string
	ip      string   // the address it listens on (Spec.Host)
	wrap    []string // the command its process runs under (Spec.Host)

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	net  *Net
	// bootstrap: other nodes' PKI bootstraps from this one's PKI port.
	bootstrap bool
	rebinds   int // port races lost at start (Wait)
}

// Net is a running network.
type Net struct {
	Spec    Spec
	Genesis time.Time
	Clock   epoch.Clock
	Nodes   []*Node
	// Operator is the network's trust root under "endorsed" admission
	// (nil otherwise): every node's PKI config carries its endorsement, and
	// a test can endorse more identities with it. Its seed is also in
	// DIR/operator-root.key (0600).
	Operator ed25519.PrivateKey
	log      *slog.Logger
}

// Start writes the nodes' keys and configs and starts every node. It returns
// once all processes run; call Wait to know when they route.
func Start(ctx context.Context, spec Spec) (*Net, error) {
	if spec.Layers < 1 || spec.MixesPerLayer < 1 || spec.Providers < 1 {
		return nil, errors.New("localnet: need at least one layer, one mix per layer and one provider")
	}
	if spec.EpochPeriod == 0 {
		spec.EpochPeriod = 2 * time.Minute
	}
	if spec.Network == "" {
		spec.Network = "localnet"
	}
	if spec.Params.PayloadLen == 0 {
		spec.Params.PayloadLen = 2048
	}
	if spec.Admission == "" {
		spec.Admission = "endorsed"
	}
	spec.Params.Hops, spec.Params.Layers = uint8(spec.Layers), uint8(spec.Layers)
	spec.Params.EpochPeriod = spec.EpochPeriod
	if err := spec.Params.Validate(); err != nil {
		return nil, fmt.Errorf("localnet: %w", err)
	}
	log := spec.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ln := &Net{Spec: spec, log: log}
	ln.Genesis = time.Now().Add(-time.Second).Truncate(time.Second)
	clk, err := epoch.New(ln.Genesis, spec.EpochPeriod, spec.EpochPeriod/10)
	if err != nil {
		return nil, err
	}
	ln.Clock = clk
	if spec.Admission == "endorsed" {
		seed := make([]byte, ed25519.SeedSize)
		rand.Read(seed)
		ln.Operator = ed25519.NewKeyFromSeed(seed)
		if err := os.WriteFile(filepath.Join(spec.Dir, "operator-root.key"), seed, 0o600); err != nil {
			return nil, fmt.Errorf("localnet: %w", err)
		}
	}

	type plan struct {
		name, role string
		ip         string
		layer      int
		seed       []byte // gossip member identity seed
		gossipPort int
		gossipID   peer.ID
	}
	var plans []*plan
	for l := range spec.Layers {
		for i := range spec.MixesPerLayer {
			plans = append(plans, &plan{name: fmt.Sprintf("mix-%d-%d", l+1, i+1), role: "mix", layer: l + 1})
		}
	}
	for i := range spec.Providers {
		plans = append(plans, &plan{name: fmt.Sprintf("provider-%d", i+1), role: "provider"})
	}
	for _, p := range plans {
		p.ip = "127.0.0.1"
		if spec.Host != nil {
			if ip, _ := spec.Host(p.name); ip != "" {
				p.ip = ip
			}
		}
		p.seed = make([]byte, ed25519.SeedSize)
		rand.Read(p.seed)
		sk, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(p.seed))
		if err != nil {
			return nil, err
		}
		if p.gossipID, err = peer.IDFromPrivateKey(sk); err != nil {
			return nil, err
		}
		if p.gossipPort, err = freePort(); err != nil {
			return nil, err
		}
	}
	// Every member bootstraps from the first two (a tiny seed list, as an
	// operator would configure).
	var bootstrap []string
	for _, p := range plans[:min(2, len(plans))] {
		bootstrap = append(bootstrap, fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", p.ip, p.gossipPort, p.gossipID))
	}
	for _, p := range plans {
		n, err := ln.prepare(p.name, p.role, p.ip, p.layer, p.seed, p.gossipPort, bootstrap)
		if err != nil {
			return nil, fmt.Errorf("localnet: %s: %w", p.name, err)
		}
		n.bootstrap = slices.Contains(plans[:min(2, len(plans))], p)
		ln.Nodes = append(ln.Nodes, n)
	}
	for _, n := range ln.Nodes {
		if err := n.Start(); err != nil {
			ln.Stop(5 * time.Second)
			return nil, err
		}
	}
	log.Info("network started", "nodes", len(ln.Nodes), "dir", spec.Dir)
	return ln, nil
}

func (ln *Net) prepare(name, role, ip string, layer int, seed []byte, gossipPort int, bootstrap []string) (*Node, error) {
	dir := filepath.Join(ln.Spec.Dir, name)
	ks, _, err := keystore.Init(filepath.Join(dir, "data"), rand.Reader)
	if err != nil {
		return nil, err
	}
	defer ks.Close()
	if _, err := ks.Rotate(ln.Clock, time.Now(), rand.Reader); err != nil {
		return nil, err
	}
	pid, err := ks.PeerID()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &Node{Name: name, Role: role, Dir: dir, PeerID: pid, net: ln, ip: ip,
		Addr:    fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", ip, port, pid),
		Metrics: fmt.Sprintf("%s:%d", ip, mport),
		Config:  filepath.Join(dir, "node.yaml"),
		log:     filepath.Join(dir, "node.log"),
	}
	if ln.Spec.Host != nil {
		_, n.wrap = ln.Spec.Host(name)
	}
	copy(n.ID[:], ks.Identity().Public().(ed25519.PublicKey))
	listen := []string{fmt.Sprintf("/ip4/%s/tcp/%d", ip, port)}
	if role == "provider" {
		wport, err := freePort()
		if err != nil {
			return nil, err
		}
		n.WSAddr = fmt.Sprintf("/ip4/%s/tcp/%d/ws/p2p/%s", ip, wport, pid)
		listen = append(listen, fmt.Sprintf("/ip4/%s/tcp/%d/ws", ip, wport))
	}
	period := ln.Spec.EpochPeriod
	adm, err := ln.admission(n)
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"role":     role,
		"network":  ln.Spec.Network,
		"data_dir": filepath.Join(dir, "data"),
		"listen":   listen,
		"epoch": map[string]any{
			"genesis": ln.Genesis.Format(time.RFC3339Nano),
			"period":  period.String(),
			"grace":   (period / 10).String(),
		},
		"mixing":  map[string]any{"max_delay": "2m"},
		"metrics": map[string]any{"listen": n.Metrics},
		"plugins": map[string]any{
			"pki": map[string]any{"builtin": "pki-gossip", "config": map[string]any{
				"network":       ln.Spec.Network,
				"listen":        []string{fmt.Sprintf("/ip4/%s/tcp/%d", ip, gossipPort)},
				"bootstrap":     bootstrap,
				"identity_seed": seed,
				"genesis":       ln.Genesis,
				"epoch_period":  period,
				"grace":         period / 10,
				"params":        ln.Spec.Params,
				"state_dir":     filepath.Join(dir, "pki"),
				"admission":     adm,
			}},
			"storage": map[string]any{"builtin": "storage-badger", "config": map[string]any{
				"dir": filepath.Join(dir, "badger"),
			}},
		},
	}
	if ln.Spec.Storage != nil {
		builtin, scfg := ln.Spec.Storage(name)
		cfg["plugins"].(map[string]any)["storage"] = map[string]any{"builtin": builtin, "config": scfg}
	}
	if role == "mix" {
		cfg["mix"] = map[string]any{"layer": layer}
		if name == ln.Spec.CheatingMix {
			cfg["experiment"] = map[string]any{"cheat_drop_forwarded_fraction": ln.Spec.CheatDropFraction}
		}
	}
	if role == "provider" && ln.Spec.AuditRate > 0 {
		cfg["provider"] = map[string]any{"audit_rate": ln.Spec.AuditRate}
	}
	if role == "mix" && ln.Spec.MixAccounting != nil {
		cfg["plugins"].(map[string]any)["accounting"] = ln.Spec.MixAccounting
	}
	if role == "provider" && ln.Spec.ProviderAccounting != nil {
		cfg["plugins"].(map[string]any)["accounting"] = ln.Spec.ProviderAccounting
	}
	b, err := json.MarshalIndent(cfg, "", "  ") // YAML is a superset of JSON
	if err != nil {
		return nil, err
	}
	return n, os.WriteFile(n.Config, b, 0o600)
}

// admission is node n's admission config: under "endorsed", the operator
// root as the one trust root and the operator's endorsement of n in its role.
func (ln *Net) admission(n *Node) (pkigossip.Admission, error) {
	adm := pkigossip.Admission{Policy: ln.Spec.Admission}
	switch ln.Spec.Admission {
	case "endorsed":
		role := interfaces.RoleMix
		if n.Role == "provider" {
			role = interfaces.RoleProvider
		}
		adm.Endorsed = pkigossip.EndorsedPolicy{
			Roots:     [][]byte{ln.Operator.Public().(ed25519.PublicKey)},
			Threshold: 1,
			Endorsements: []pkigossip.Endorsement{pkigossip.Endorse(ln.Operator, ln.Spec.Network,
				n.ID[:], role, ln.Genesis.Add(endorsementLifetime))},
		}
	case "open":
		adm.Open = ln.Spec.Open
	case "none":
	default:
		return adm, fmt.Errorf("localnet: admission %q, want endorsed, open or none", ln.Spec.Admission)
	}
	return adm, nil
}

// Start starts the node's process (again, after Kill).
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.done:
		default:
			return fmt.Errorf("localnet: %s is running", n.Name)
		}
	}
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := append(append([]string{}, n.wrap...), n.net.Spec.Binary, "node", "--config", n.Config)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), n.net.Spec.Env...)
	if n.net.Spec.CheatingMix == n.Name {
		cmd.Env = append(cmd.Env, config.ExperimentEnv+"="+config.ExperimentConsent)
	}
	// Its own process group, so that a Ctrl-C on the terminal reaches the
	// demo, which stops the nodes in order, and Kill takes the plugins too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("localnet: start %s: %w", n.Name, err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		err := cmd.Wait()
		logf.Close()
		n.mu.Lock()
		n.err = err
		n.mu.Unlock()
		close(done)
	}(n.done)
	return nil
}

// Signal sends sig to the node's process group (the node and its plugins
// for SIGKILL; the node alone relays SIGTERM to its plugins).
func (n *Node) Signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return fmt.Errorf("localnet: %s not started", n.Name)
	}
	if sig == syscall.SIGKILL {
		return syscall.Kill(-n.cmd.Process.Pid, sig)
	}
	return n.cmd.Process.Signal(sig)
}

// Kill kills the node and its plugins at once (SIGKILL) and waits for it.
func (n *Node) Kill() error {
	if err := n.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-n.Done()
	return nil
}

// Stop asks the node to stop (SIGTERM), waits up to timeout, then kills it.
// It returns the process's exit error, if any, from a graceful stop.
func (n *Node) Stop(timeout time.Duration) error {
	if !n.Running() {
		return nil
	}
	_ = n.Signal(syscall.SIGTERM)
	select {
	case <-n.Done():
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.err
	case <-time.After(timeout):
		_ = n.Kill()
		return fmt.Errorf("localnet: %s did not stop within %v; killed", n.Name, timeout)
	}
}

// Done is closed when the process exits.
func (n *Node) Done() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.done
}

// Running reports whether the process runs.
func (n *Node) Running() bool {
	select {
	case <-n.Done():
		return false
	default:
		return true
	}
}

// Log is the path of the node's log file.
func (n *Node) Log() string { return n.log }

// Scrape reads the node's /metrics.
func (n *Node) Scrape(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Metrics+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bufio.NewReader(resp.Body))
}

// Value sums the samples of a metric whose labels include labels
// ("k=v" pairs); a missing metric is 0.
func Value(mf map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := mf[name]
	if f == nil {
		return 0
	}
	var sum float64
next:
	for _, m := range f.Metric {
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

// Wait returns once every node admits all the others and its document for
// the current epoch lists the whole network (documents grow as descriptors
// gossip in: a node can admit everyone through the next epoch's document
// while the current one still lacks a node), or ctx ends, or a node exits.
func (ln *Net) Wait(ctx context.Context) error {
	want := float64(len(ln.Nodes) - 1)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		ready := 0
		for _, n := range ln.Nodes {
			if !n.Running() {
				tail, _ := os.ReadFile(n.log)
				tail = tail[max(0, len(tail)-800):]
				if bytes.Contains(tail, []byte("address already in use")) && n.rebinds < 3 {
					// A port picked free was taken by someone else before
					// the node bound it (freePort cannot reserve): move the
					// node to other ports and start it again.
					n.rebinds++
					ln.log.Warn("node lost a port race; restarting it on other ports", "node", n.Name, "try", n.rebinds)
					if err := n.rebind(); err != nil {
						return fmt.Errorf("localnet: %s: rebinding: %w", n.Name, err)
					}
					if err := n.Start(); err != nil {
						return err
					}
					continue
				}
				return fmt.Errorf("localnet: %s exited; its log %s ends:\n%s", n.Name, n.log, tail)
			}
			mf, err := n.Scrape(ctx)
			if err == nil && Value(mf, "sotto_admitted_peers") == want &&
				Value(mf, "sotto_document_nodes") == float64(len(ln.Nodes)) {
				ready++
			}
		}
		if ready == len(ln.Nodes) {
			ln.log.Info("network routing", "nodes", len(ln.Nodes))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localnet: %d of %d nodes routing: %w", ready, len(ln.Nodes), ctx.Err())
		case <-t.C:
		}
	}
}

// Providers returns the provider nodes.
func (ln *Net) Providers() []*Node { return ln.role("provider") }

// Mixes returns the mix nodes.
func (ln *Net) Mixes() []*Node { return ln.role("mix") }

func (ln *Net) role(r string) []*Node {
	var out []*Node
	for _, n := range ln.Nodes {
		if n.Role == r {
			out = append(out, n)
		}
	}
	return out
}

// Stop stops every node (SIGTERM, then SIGKILL after timeout) and returns
// the graceful-stop errors.
func (ln *Net) Stop(timeout time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, len(ln.Nodes))
	for i, n := range ln.Nodes {
		if n.cmd == nil {
			continue
		}
		wg.Go(func() { errs[i] = n.Stop(timeout) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// rebind gives a stopped node new listen and metrics ports (and a new
// PKI port unless others bootstrap from it), rewriting its config.
func (n *Node) rebind() error {
	raw, err := os.ReadFile(n.Config)
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("config is not the JSON localnet wrote: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	mport, err := freePort()
	if err != nil {
		return err
	}
	listen := []string{fmt.Sprintf("/ip4/%s/tcp/%d", n.ip, port)}
	if n.WSAddr != "" {
		wport, err := freePort()
		if err != nil {
			return err
		}
		n.WSAddr = fmt.Sprintf("/ip4/%s/tcp/%d/ws/p2p/%s", n.ip, wport, n.PeerID)
		listen = append(listen, fmt.Sprintf("/ip4/%s/tcp/%d/ws", n.ip, wport))
	}
	cfg["listen"] = listen
	if m, ok := cfg["metrics"].(map[string]any); ok {
		m["listen"] = fmt.Sprintf("%s:%d", n.ip, mport)
	}
	if pl, ok := cfg["plugins"].(map[string]any); ok {
		if pki, ok := pl["pki"].(map[string]any); ok {
			if pc, ok := pki["config"].(map[string]any); ok {
				if gp, err := freePort(); err == nil && !n.bootstrap {
					pc["listen"] = []string{fmt.Sprintf("/ip4/%s/tcp/%d", n.ip, gp)}
				}
			}
		}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(n.Config, b, 0o600); err != nil {
		return err
	}
	n.Addr = fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", n.ip, port, n.PeerID)
	n.Metrics = fmt.Sprintf("%s:%d", n.ip, mport)
	return nil
}

// handedOut holds the ports freePort gave this process, so that two
// networks started by one test binary never get the same one.
var handedOut sync.Map

// freePort picks a free TCP port on 127.0.0.1 below the kernel's ephemeral
// range (32768–60999 by default on Linux). A port the kernel hands out for
// :0 could be taken again, by an outgoing connection's local end or another
// test's listener, between this check and the node's bind; ports below the
// range are only ever taken by someone who asks for them by number.
func freePort() (int, error) {
	for range 200 {
		port := 20000 + mathrand.IntN(12000)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("localnet: no free port found in 20000-31999")
}

// FreePort is freePort for other tests that start listeners by number.
func FreePort() (int, error) { return freePort() }

// PID is the node process's ID (0 before Start): fault tests find its
// plugin processes by it, and the soak samples /proc/PID.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}
