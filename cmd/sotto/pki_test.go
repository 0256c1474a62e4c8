package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/keystore"
	"github.com/sottonet/sotto/interfaces"
	pkistatic "github.com/sottonet/sotto/plugins/pki-static"
)

// The pki-static flow of docs/OPERATING.md without running nodes: network
// init, every node exports, the operator signs; the plugin then serves a
// document of every node, and accepts each node's own descriptor as
// published (byte for byte the node's).
func TestPKIExportAndSign(t *testing.T) {
	dir := t.TempDir()
	hosts := "hosts:\n"
	for _, h := range []string{"mix-1 mix 127.0.0.1 21100", "mix-2 mix 127.0.0.2 21100", "provider-1 provider 127.0.0.3 21100"} {
		f := strings.Fields(h)
		hosts += "  - {name: " + f[0] + ", role: " + f[1] + ", address: " + f[2] + ", node_port: " + f[3] + ", data_dir: " + filepath.Join(dir, "net", f[0], "data") + "}\n"
	}
	hf := filepath.Join(dir, "hosts.yaml")
	os.WriteFile(hf, []byte(hosts), 0o600)
	out := filepath.Join(dir, "net")
	genesis := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	if _, stderr, err := run(t, "network", "init", "--name", "st", "--pki", "pki-static", "--hops", "2", "--genesis", genesis, "--hosts", hf, "--out", out); err != nil {
		t.Fatalf("network init: %v\n%s", err, stderr)
	}
	desc := filepath.Join(dir, "desc")
	for _, n := range []string{"mix-1", "mix-2", "provider-1"} {
		if _, stderr, err := run(t, "pki", "export", "--config", filepath.Join(out, n, "node.yaml"), "--out", desc); err != nil {
			t.Fatalf("export %s: %v\n%s", n, err, stderr)
		}
	}
	docs := filepath.Join(dir, "docs")
	sout, stderr, err := run(t, "pki", "sign", "--network", filepath.Join(out, "network.yaml"), "--operator-key", filepath.Join(out, "operator.key"),
		"--descriptors", desc, "--out", docs)
	if err != nil || !strings.Contains(sout, "3 nodes") {
		t.Fatalf("sign: %v %q\n%s", err, sout, stderr)
	}
	// A second run keeps the first document of the epoch.
	if sout, _, _ := run(t, "pki", "sign", "--network", filepath.Join(out, "network.yaml"), "--operator-key", filepath.Join(out, "operator.key"),
		"--descriptors", desc, "--out", docs); strings.Contains(sout, "signed epoch") {
		t.Errorf("the second run wrote again: %q", sout)
	}
	netf, err := config.LoadNetwork(filepath.Join(out, "network.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pkistatic.Open(pkistatic.Config{OperatorKey: netf.PKI.OperatorKey, Dir: docs, Network: "st"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(config.Sources{File: filepath.Join(out, "mix-2", "node.yaml"), Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	clk := c.NetworkFileContent()
	e := uint64(time.Since(clk.Genesis) / clk.Period)
	r, err := p.Document(context.Background(), &interfaces.DocumentRequest{Epoch: e})
	if err != nil || len(r.Document.Nodes) != 3 {
		t.Fatalf("document of epoch %d: %v", e, err)
	}
	ks, err := keystore.Open(c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	sd, err := nodeDescriptor(&c, ks, e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish(context.Background(), &interfaces.PublishRequest{Descriptor: sd}); err != nil {
		t.Errorf("the node's own descriptor is not the document's: %v", err)
	}
	// Signing with another key is refused before anything is written.
	other := filepath.Join(dir, "other.key")
	os.WriteFile(other, []byte(strings.Repeat("11", 32)), 0o600)
	if _, _, err := run(t, "pki", "sign", "--network", filepath.Join(out, "network.yaml"), "--operator-key", other,
		"--descriptors", desc, "--out", docs); err == nil {
		t.Error("a key that is not the network's operator key signed")
	}
}

func TestVersionFlag(t *testing.T) {
	out, _, err := run(t, "--version")
	if err != nil || !strings.Contains(out, "sotto version") || !strings.Contains(out, "go1.") {
		t.Errorf("sotto --version = %q, %v", out, err)
	}
}

// The signer waits for --nodes from its own start, not the epoch's: one
// started late in an epoch does not sign that epoch and the next at once
// from the first nodes to export (it did, and a cold start in the second
// half of a 20-minute epoch had no usable document for two epochs).
func TestSignWaitsForTheNodesFromItsOwnStart(t *testing.T) {
	const period = 20 * time.Minute
	for _, tc := range []struct {
		name        string
		next        bool
		n, min      int
		waited      bool
		untilNext   time.Duration
		wantSigning bool
	}{
		{"no descriptors", false, 0, 0, true, period / 2, false},
		{"enough nodes", false, 5, 5, false, period / 2, true},
		{"without --nodes", false, 1, 0, false, period / 2, true},
		{"too few, just started late in the epoch", false, 2, 5, false, period / 4, false},
		{"too few, next epoch, just started", true, 2, 5, false, period / 4, false},
		{"too few, waited long enough", false, 2, 5, true, period / 2, true},
		{"too few, next epoch about to begin", true, 2, 5, false, period / 20, true},
		{"too few, current epoch about to end", false, 2, 5, false, period / 20, false},
		{"next epoch, enough nodes", true, 5, 5, false, period / 4, true},
	} {
		if got := signReady(tc.next, tc.n, tc.min, tc.waited, tc.untilNext, period); got != tc.wantSigning {
			t.Errorf("%s: signReady = %v, want %v", tc.name, got, tc.wantSigning)
		}
	}
}
