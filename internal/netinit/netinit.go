// Package netinit writes a whole network for an operator: the network
// file every node and client reads, and for each host its complete node
// config and its keys, ready to copy (`sotto network init --hosts FILE`).
// The example configs under host/config/testdata/example are written by
// this code, so that what the docs show is what runs.
package netinit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/keystore"
	"github.com/sottonet/sotto/interfaces"
	pkigossip "github.com/sottonet/sotto/plugins/pki-gossip"
)

// Default ports of a generated node: libp2p TCP and QUIC share NodePort,
// the gossip PKI listens on PKIPort, a provider's WebSocket on WSPort.
const (
	DefaultNodePort = 4100
	DefaultPKIPort  = 4101
	DefaultWSPort   = 4102
	DefaultMetrics  = "127.0.0.1:9464"
	DefaultDataDir  = "/var/lib/sotto"
)

// Host is one line of the hosts file.
type Host struct {
	Name    string `koanf:"name"`    // a directory name: letters, digits, - and _
	Role    string `koanf:"role"`    // mix or provider
	Address string `koanf:"address"` // the IP address or DNS name others reach it at
	// Optional: ports, the metrics listener and the data directory on the
	// host (default DefaultDataDir; "{name}" is replaced by Name).
	NodePort int    `koanf:"node_port"`
	PKIPort  int    `koanf:"pki_port"`
	WSPort   int    `koanf:"ws_port"`
	Metrics  string `koanf:"metrics"`
	DataDir  string `koanf:"data_dir"`
}

// Options are a network to write.
type Options struct {
	Hosts []Host
	// Network is the network file to write; Providers and PKI.Bootstrap
	// (and PKI.Roots or PKI.OperatorKey) are filled in.
	Network config.Network
	// Out is the directory to write into; it must not exist or be empty.
	Out string
	// DataDir is the default data directory on every host ("{name}" is
	// replaced by the host's name). Default DefaultDataDir.
	DataDir string
	// EndorseFor is how long the operator's endorsements last. Default a year.
	EndorseFor time.Duration
	// Now is when keys are made for (default time.Now()); Rand the
	// randomness (crypto/rand in production, seeded in tests).
	Now  time.Time
	Rand io.Reader
	// WriteKeys writes each host's key directory (the examples do not).
	WriteKeys bool
}

// ReadHosts reads a hosts file: YAML with a list under "hosts".
func ReadHosts(path string) ([]Host, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k := koanf.New(".")
	if err := k.Load(rawbytes.Provider(b), yaml.Parser()); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var f struct {
		Hosts []Host `koanf:"hosts"`
	}
	if err := k.UnmarshalWithConf("", &f, koanf.UnmarshalConf{DecoderConfig: &mapstructure.DecoderConfig{
		ErrorUnused: true, TagName: "koanf", WeaklyTypedInput: true, Result: &f,
	}}); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.Hosts) == 0 {
		return nil, fmt.Errorf("%s: no hosts (want a list under \"hosts:\")", path)
	}
	return f.Hosts, nil
}

// Result is what Write made.
type Result struct {
	NetworkFile string
	// OperatorKey is the file with the operator's private key (the
	// endorsement root, or pki-static's document signing key): keep it
	// offline.
	OperatorKey string
	Nodes       []NodeResult
}

// NodeResult is one host's files.
type NodeResult struct {
	Host
	Dir       string // OUT/NAME: node.yaml, network.yaml and data/
	Config    string
	PeerID    string
	PKIPeerID string
	Addr      string // full node multiaddr (TCP)
	nodeID    ed25519.PublicKey
}

func (h *Host) fill(o *Options, i int) error {
	switch {
	case h.Name == "" || strings.ContainsAny(h.Name, "/\\ .") || h.Name == "data":
		return fmt.Errorf("hosts[%d]: name %q: want a plain name (letters, digits, - and _)", i, h.Name)
	case h.Role != config.RoleMix && h.Role != config.RoleProvider:
		return fmt.Errorf("hosts[%d] (%s): role %q, want mix or provider", i, h.Name, h.Role)
	case h.Address == "":
		return fmt.Errorf("hosts[%d] (%s): address must be set (IP or DNS name)", i, h.Name)
	}
	if h.NodePort == 0 {
		h.NodePort = DefaultNodePort
	}
	if h.PKIPort == 0 {
		h.PKIPort = DefaultPKIPort
	}
	if h.WSPort == 0 {
		h.WSPort = DefaultWSPort
	}
	if h.Metrics == "" {
		h.Metrics = DefaultMetrics
	}
	if h.DataDir == "" {
		h.DataDir = o.DataDir
	}
	h.DataDir = strings.ReplaceAll(h.DataDir, "{name}", h.Name)
	return nil
}

// addrBase is /ip4/A, /ip6/A or /dns/A.
func addrBase(a string) (base string, isIP bool) {
	if ip := net.ParseIP(a); ip != nil {
		if ip.To4() != nil {
			return "/ip4/" + a, true
		}
		return "/ip6/" + a, true
	}
	return "/dns/" + a, false
}

// Write writes the network.
func Write(o Options) (*Result, error) {
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	if o.EndorseFor == 0 {
		o.EndorseFor = 365 * 24 * time.Hour
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Rand == nil {
		return nil, errors.New("netinit: no randomness")
	}
	names := map[string]bool{}
	hosts := make([]Host, len(o.Hosts))
	copy(hosts, o.Hosts)
	for i := range hosts {
		if err := hosts[i].fill(&o, i); err != nil {
			return nil, err
		}
		if names[hosts[i].Name] {
			return nil, fmt.Errorf("hosts[%d]: name %q twice", i, hosts[i].Name)
		}
		names[hosts[i].Name] = true
	}
	if ents, err := os.ReadDir(o.Out); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("netinit: %s is not empty; refusing to overwrite a network", o.Out)
	}
	if err := os.MkdirAll(o.Out, 0o700); err != nil {
		return nil, err
	}
	n := o.Network
	if n.PKI.Plugin == "" {
		n.PKI.Plugin = config.PKIGossip
	}
	if n.PKI.Admission == "" {
		n.PKI.Admission = "endorsed"
	}
	if n.PKI.Threshold == 0 {
		n.PKI.Threshold = 1
	}
	res := &Result{NetworkFile: filepath.Join(o.Out, "network.yaml")}
	// pki-static: every node reads the operator's signed documents from
	// OUT/documents, the same path on every host (the operator copies OUT
	// to each host and keeps documents/ synced; docs/OPERATING.md).
	docDir := ""
	if n.PKI.Plugin == config.PKIStatic {
		abs, err := filepath.Abs(o.Out)
		if err != nil {
			return nil, err
		}
		docDir = filepath.Join(abs, "documents")
		if err := os.MkdirAll(docDir, 0o755); err != nil {
			return nil, err
		}
	}

	// The operator's key: the endorsement root, or pki-static's signer.
	var operator ed25519.PrivateKey
	if (n.PKI.Plugin == config.PKIGossip && n.PKI.Admission == "endorsed") || n.PKI.Plugin == config.PKIStatic {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := io.ReadFull(o.Rand, seed); err != nil {
			return nil, err
		}
		operator = ed25519.NewKeyFromSeed(seed)
		res.OperatorKey = filepath.Join(o.Out, "operator.key")
		if err := os.WriteFile(res.OperatorKey, []byte(hex.EncodeToString(seed)+"\n"), 0o600); err != nil {
			return nil, err
		}
		clear(seed)
		pub := operator.Public().(ed25519.PublicKey)
		if n.PKI.Plugin == config.PKIStatic {
			n.PKI.OperatorKey = hex.EncodeToString(pub)
		} else {
			n.PKI.Roots = []string{base64.StdEncoding.EncodeToString(pub)}
		}
	}
	// Keys first: the network file names peer IDs.
	clk, err := epoch.New(n.Genesis, n.Period, n.Grace)
	if err != nil {
		return nil, fmt.Errorf("netinit: %w", err)
	}
	for _, h := range hosts {
		nr := NodeResult{Host: h, Dir: filepath.Join(o.Out, h.Name)}
		nr.Config = filepath.Join(nr.Dir, "node.yaml")
		if err := os.MkdirAll(nr.Dir, 0o700); err != nil {
			return nil, err
		}
		keyDir := filepath.Join(nr.Dir, "data")
		if !o.WriteKeys {
			keyDir = filepath.Join(o.Out, ".keys-"+h.Name)
		}
		ks, _, err := keystore.Init(keyDir, o.Rand)
		if err != nil {
			return nil, err
		}
		if o.WriteKeys {
			if _, err := ks.Rotate(clk, o.Now, o.Rand); err != nil {
				ks.Close()
				return nil, err
			}
		}
		pid, _ := ks.PeerID()
		ppid, err := ks.PKIPeerID()
		id := ks.Identity().Public().(ed25519.PublicKey)
		nodeID := append(ed25519.PublicKey(nil), id...)
		ks.Close()
		if !o.WriteKeys {
			os.RemoveAll(keyDir)
		}
		if err != nil {
			return nil, err
		}
		nr.PeerID, nr.PKIPeerID = pid.String(), ppid.String()
		base, _ := addrBase(h.Address)
		nr.Addr = fmt.Sprintf("%s/tcp/%d/p2p/%s", base, h.NodePort, pid)
		if h.Role == config.RoleProvider {
			n.Providers = append(n.Providers, nr.Addr)
		}
		if n.PKI.Plugin == config.PKIGossip && len(n.PKI.Bootstrap) < 3 {
			n.PKI.Bootstrap = append(n.PKI.Bootstrap, fmt.Sprintf("%s/tcp/%d/p2p/%s", base, h.PKIPort, ppid))
		}
		nr.nodeID = nodeID
		res.Nodes = append(res.Nodes, nr)
	}
	if err := n.Validate(); err != nil {
		return nil, fmt.Errorf("netinit: the network file would be invalid: %w", err)
	}
	netYAML, err := NetworkYAML(&n)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(res.NetworkFile, netYAML, 0o644); err != nil {
		return nil, err
	}
	for i := range res.Nodes {
		nr := &res.Nodes[i]
		var endorsement string
		if operator != nil && n.PKI.Plugin == config.PKIGossip {
			role := interfaces.RoleMix
			if nr.Role == config.RoleProvider {
				role = interfaces.RoleProvider
			}
			e := pkigossip.Endorse(operator, n.Name, nr.nodeID, role, o.Now.Add(o.EndorseFor))
			b, err := json.Marshal(e)
			if err != nil {
				return nil, err
			}
			endorsement = string(b)
		}
		b, err := NodeYAML(nr.Host, &n, endorsement, docDir)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(nr.Config, b, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(nr.Dir, "network.yaml"), netYAML, 0o644); err != nil {
			return nil, err
		}
	}
	return res, nil
}

var netTmpl = template.Must(template.New("network").Funcs(template.FuncMap{"json": jsonString}).Parse(
	`# The network file of {{json .Name}}: every node and client of the network
# reads this same file (nodes through network_file in their config, clients
# with --network). Made by ` + "`sotto network init`" + `; nothing in it is secret.
# Durations are Go durations (20m, 2m), rates are per second.
name: {{json .Name}}
genesis: {{.Genesis.UTC.Format "2006-01-02T15:04:05Z07:00"}}  # start of epoch 0
period: {{.Period}}               # epoch length: keys and documents turn over each epoch
grace: {{.Grace}}                 # a key is still accepted this long after its epoch
geometry:
  hops: {{.Geometry.Hops}}                  # mix hops of a path (providers excluded)
  layers: {{.Geometry.Layers}}
  payload_len: {{.Geometry.PayloadLen}}          # bytes of user payload per packet
rates:                     # Loopix (docs/OPERATING.md, "Choosing μ, λ and the epoch")
  mu: {{.Rates.Mu}}                    # per-hop delay Exp(μ): mean 1/μ s
  lambda_p: {{.Rates.LambdaP}}              # client payload slots
  lambda_l: {{.Rates.LambdaL}}              # client loop cover
  lambda_d: {{.Rates.LambdaD}}              # client drop cover
  lambda_m: {{.Rates.LambdaM}}              # mix loop cover, per mix
pki:
  plugin: {{.PKI.Plugin}}
{{- if eq .PKI.Plugin "pki-gossip"}}
  admission: {{.PKI.Admission}}     # endorsed | open | none
{{- if eq .PKI.Admission "endorsed"}}
  roots: [{{range $i, $r := .PKI.Roots}}{{if $i}}, {{end}}{{$r}}{{end}}]  # operator trust roots (Ed25519, base64)
  threshold: {{.PKI.Threshold}}
{{- end}}
  bootstrap:               # PKI members to dial first (sotto node addrs prints them)
{{- range .PKI.Bootstrap}}
    - {{.}}
{{- end}}
{{- else}}
  operator_key: {{.PKI.OperatorKey}}  # signs every document (sotto pki sign)
{{- end}}
providers:                 # where clients connect
{{- range .Providers}}
  - {{.}}
{{- end}}
`))

// NetworkYAML renders a network file.
func NetworkYAML(n *config.Network) ([]byte, error) {
	var b bytes.Buffer
	if err := netTmpl.Execute(&b, n); err != nil {
		return nil, err
	}
	if _, err := config.ParseNetwork(b.Bytes()); err != nil {
		return nil, fmt.Errorf("netinit: rendered network file does not parse: %w", err)
	}
	return b.Bytes(), nil
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

type nodeData struct {
	Host
	Base, ListenBase string
	Announce         bool
	Provider         bool
	PKI              string
	Endorsement      string
	DocDir           string
}

var nodeTmpl = template.Must(template.New("node").Parse(
	`# Node {{.Name}} ({{.Role}}). Everything the whole network shares (name, epoch
# clock, Loopix rates, geometry, PKI roots and bootstrap) is in network.yaml;
# this file holds only what is this node's own. Keys are in data_dir/keys
# (sotto keygen; 0700/0600). Check with: sotto node --check --config node.yaml
role: {{.Role}}
network_file: network.yaml      # relative to this file
data_dir: {{.DataDir}}
listen:                         # libp2p: TCP and QUIC on one port
  - {{.ListenBase}}/tcp/{{.NodePort}}
  - {{.ListenBase}}/udp/{{.NodePort}}/quic-v1
{{- if .Provider}}
  - {{.ListenBase}}/tcp/{{.WSPort}}/ws  # WebSocket, for browsers
{{- end}}
{{- if .Announce}}
announce:                       # what the node publishes (it listens on every interface)
  - {{.Base}}/tcp/{{.NodePort}}
  - {{.Base}}/udp/{{.NodePort}}/quic-v1
{{- if .Provider}}
  - {{.Base}}/tcp/{{.WSPort}}/ws
{{- end}}
{{- end}}
plugins:
  pki:
    builtin: {{.PKI}}
    config:
{{- if eq .PKI "pki-gossip"}}
      listen: [{{.ListenBase}}/tcp/{{.PKIPort}}]   # the PKI's own libp2p host; identity derived from data_dir/keys
      state_dir: {{.DataDir}}/pki
{{- if .Endorsement}}
      admission:
        endorsed:
          endorsements: [{{.Endorsement}}]
{{- end}}
{{- else}}
      dir: {{.DocDir}}   # the operator's signed documents (sotto pki sign --out), synced to every host
{{- end}}
  storage:
    builtin: storage-badger
    config: {dir: {{.DataDir}}/badger}
metrics:
  listen: {{.Metrics}}          # /metrics, /healthz, /readyz
`))

// NodeYAML renders one node's config.
func NodeYAML(h Host, n *config.Network, endorsement, docDir string) ([]byte, error) {
	base, isIP := addrBase(h.Address)
	d := nodeData{Host: h, Base: base, ListenBase: base, Provider: h.Role == config.RoleProvider, PKI: n.PKI.Plugin, Endorsement: endorsement, DocDir: docDir}
	if !isIP {
		d.ListenBase, d.Announce = "/ip4/0.0.0.0", true
	}
	var b bytes.Buffer
	if err := nodeTmpl.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
