package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/spf13/cobra"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/keystore"
	"github.com/sottonet/sotto/interfaces"
	pkistatic "github.com/sottonet/sotto/plugins/pki-static"
)

// pkiCmd is the operator's tooling for pki-static: nodes export their own
// signed descriptors, the operator signs documents from them. No node
// secret ever leaves its host.
func pkiCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pki",
		Short: "pki-static tooling: export a node's descriptors, sign documents",
	}
	cmd.AddCommand(pkiExportCmd(), pkiSignCmd())
	return cmd
}

func pkiExportCmd() *cobra.Command {
	var (
		cfgFile, out string
		watch        bool
	)
	cmd := &cobra.Command{
		Use:   "export --config node.yaml --out DIR",
		Short: "Sign this node's descriptors (with its own identity key) into DIR for the operator",
		Long: "Write the node's signed descriptors for the current and next epoch (as far as its\n" +
			"Sphinx keys reach: run `sotto keygen --config` first) into DIR/<id>-<epoch>.desc: the\n" +
			"exact bytes the running node publishes, built from its announce (or listen)\n" +
			"addresses and its keys. Copy them to the operator, who runs `sotto pki sign`.\n" +
			"With --watch, export again every quarter epoch until stopped (run it beside the\n" +
			"node, which creates the next epochs' keys as time passes).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := config.Load(config.Sources{File: cfgFile, Flags: cmd.Flags()})
			if err != nil {
				return err
			}
			if err := c.Validate(); err != nil {
				return err
			}
			clk, err := epoch.New(c.Epoch.Genesis, c.Epoch.Period, c.Epoch.Grace)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			for {
				n, err := exportOnce(&c, clk, out)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d descriptor(s) written to %s\n", n, out)
				if !watch {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(min(clk.Period()/4, clk.UntilNext(time.Now())+time.Second)):
				}
			}
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "node config file (YAML)")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the descriptors to")
	cmd.Flags().BoolVar(&watch, "watch", false, "export again every quarter epoch until stopped")
	config.RegisterFlags(cmd.Flags())
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// exportOnce writes the node's descriptors for every epoch from the
// current one that its keys cover.
func exportOnce(c *config.Config, clk epoch.Clock, out string) (int, error) {
	ks, err := keystore.Open(c.DataDir)
	if err != nil {
		return 0, err
	}
	defer ks.Close()
	cur := clk.Now()
	n := 0
	for e := cur; e <= cur+1; e++ {
		sd, err := nodeDescriptor(c, ks, e)
		if err != nil {
			if n == 0 {
				return 0, fmt.Errorf("epoch %d: %w", e, err)
			}
			break // keys do not reach that far yet
		}
		name := fmt.Sprintf("%x-%d.desc", sd.Descriptor.Identity[:8], e)
		if err := writeAtomic(filepath.Join(out, name), sd.Raw, 0o644); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// nodeDescriptor builds the descriptor a node of config c publishes for
// epoch e, byte for byte as host/node does: its addresses as it announces
// them (sorted, binary), its peer ID, role and Sphinx keys. A node with
// an accounting plugin adds the plugin's parameters, which this cannot
// know: pki-static networks run without accounting.
func nodeDescriptor(c *config.Config, ks *keystore.Keystore, e uint64) (*interfaces.SignedDescriptor, error) {
	if c.Plugins.Accounting.IsSet() {
		return nil, errors.New("a node with an accounting plugin publishes the plugin's parameters, which export cannot know")
	}
	src := c.Announce
	if len(src) == 0 {
		src = c.Listen
	}
	var addrs [][]byte
	for _, s := range src {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, err
		}
		if strings.Contains(s, "/0.0.0.0/") || strings.Contains(s, "/::/") || strings.Contains(s, "/tcp/0") || strings.Contains(s, "/udp/0/") {
			return nil, fmt.Errorf("listen address %s is a wildcard or port 0: set announce to the address others reach", s)
		}
		addrs = append(addrs, a.Bytes())
	}
	slices.SortFunc(addrs, bytes.Compare)
	addrs = slices.CompactFunc(addrs, bytes.Equal)
	if len(addrs) > interfaces.MaxAddrs {
		addrs = addrs[:interfaces.MaxAddrs]
	}
	pid, err := ks.PeerID()
	if err != nil {
		return nil, err
	}
	pidBytes, err := pid.MarshalBinary()
	if err != nil {
		return nil, err
	}
	keys, err := ks.PublicKeys(e)
	if err != nil {
		return nil, err
	}
	d := &interfaces.Descriptor{
		Network:  c.Network,
		Epoch:    e,
		Identity: ks.Identity().Public().(ed25519.PublicKey),
		PeerID:   pidBytes,
		Addrs:    addrs,
		Role:     c.RoleValue(),
	}
	copy(d.SphinxKeys[:], keys[:])
	return interfaces.SignDescriptor(d, ks.Identity())
}

func pkiSignCmd() *cobra.Command {
	var (
		netFile, keyFile, descDir string
		outs                      []string
		watch                     bool
		lead                      float64
		minNodes                  int
	)
	cmd := &cobra.Command{
		Use:   "sign --network network.yaml --operator-key operator.key --descriptors DIR --out DIR",
		Short: "Sign pki-static documents from the nodes' exported descriptors",
		Long: "Build and sign the document of the current and the next epoch from the\n" +
			"descriptors in --descriptors (from `sotto pki export` on each node: no node\n" +
			"secret is needed) and write <epoch>.sdoc into each --out directory (the nodes'\n" +
			"pki-static dir, or a directory you copy to them). A document already written is\n" +
			"never replaced: members keep the first document of an epoch. The next epoch's\n" +
			"document is signed once --lead of the current epoch has passed (default half),\n" +
			"so that nodes had time to export. With --nodes, an epoch's document waits for\n" +
			"that many nodes (at most --lead of an epoch from the signer's start; the next\n" +
			"epoch's until a tenth of an epoch before it begins). With --watch, sign again\n" +
			"every few seconds until stopped: the re-sign-each-epoch mode.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := config.LoadNetwork(netFile)
			if err != nil {
				return err
			}
			if n.PKI.Plugin != config.PKIStatic {
				return fmt.Errorf("%s: pki.plugin is %q, not pki-static", netFile, n.PKI.Plugin)
			}
			key, err := readOperatorKey(keyFile)
			if err != nil {
				return err
			}
			defer clear(key)
			if hex.EncodeToString(key.Public().(ed25519.PublicKey)) != n.PKI.OperatorKey {
				return fmt.Errorf("%s is not the key of the network file's pki.operator_key", keyFile)
			}
			clk, err := epoch.New(n.Genesis, n.Period, n.Grace)
			if err != nil {
				return err
			}
			for _, o := range outs {
				if err := os.MkdirAll(o, 0o755); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			started := time.Now()
			for {
				waited := time.Since(started) >= time.Duration(lead*float64(clk.Period()))
				if err := signOnce(ctx, n, clk, key, descDir, outs, lead, minNodes, waited, cmd.OutOrStdout()); err != nil && !watch {
					return err
				} else if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
				}
				if !watch {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(min(max(clk.Period()/100, 200*time.Millisecond), 5*time.Second)):
				}
			}
		},
	}
	cmd.Flags().StringVar(&netFile, "network", "", "the network file (pki.plugin: pki-static)")
	cmd.Flags().StringVar(&keyFile, "operator-key", "", "the operator's key file (from sotto network init: 64 hex digits)")
	cmd.Flags().StringVar(&descDir, "descriptors", "", "directory of the nodes' .desc files")
	cmd.Flags().StringSliceVar(&outs, "out", nil, "directory to write the signed documents to (repeatable)")
	cmd.Flags().BoolVar(&watch, "watch", false, "keep signing each epoch until stopped")
	cmd.Flags().Float64Var(&lead, "lead", 0.5, "fraction of an epoch after which the next epoch's document is signed")
	cmd.Flags().IntVar(&minNodes, "nodes", 0, "wait for this many nodes' descriptors before signing an epoch's document: at most --lead of an epoch from the signer's start, and the next epoch's until a tenth of an epoch before it begins")
	for _, f := range []string{"network", "operator-key", "descriptors", "out"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

func readOperatorKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	clear(b)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s: want an Ed25519 seed as 64 hex digits", path)
	}
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed), nil
}

// signOnce signs the current epoch's document and, past lead of the
// epoch, the next one's, where none is written yet and signReady says so;
// waited: the signer has run for lead of an epoch.
func signOnce(_ context.Context, n *config.Network, clk epoch.Clock, key ed25519.PrivateKey, descDir string, outs []string, lead float64, minNodes int, waited bool, w io.Writer) error {
	byEpoch, err := readDescriptors(descDir, n.Name)
	if err != nil {
		return err
	}
	now := time.Now()
	cur := clk.At(now)
	late := float64(clk.Period()-clk.UntilNext(now)) >= lead*float64(clk.Period())
	epochs := []uint64{cur}
	if late {
		epochs = append(epochs, cur+1)
	}
	var errs []error
	for _, e := range epochs {
		nodes := byEpoch[e]
		if !signReady(e == cur+1, len(nodes), minNodes, waited, clk.UntilNext(now), clk.Period()) {
			continue // a document, once written, stands for its epoch: wait for the nodes
		}
		doc, err := interfaces.NewDocument(n.Name, e, n.Params(), nodes)
		if err != nil {
			errs = append(errs, fmt.Errorf("epoch %d: %w", e, err))
			continue
		}
		signed, err := pkistatic.SignDocument(doc, key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, o := range outs {
			path := filepath.Join(o, fmt.Sprintf("%d.sdoc", e))
			if _, err := os.Stat(path); err == nil {
				continue // the first document of an epoch stands
			}
			if err := writeAtomic(path, signed, 0o644); err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(w, "signed epoch %d: %d nodes -> %s\n", e, len(nodes), path)
		}
	}
	return errors.Join(errs...)
}

// signReady reports whether an epoch's document is signed now from n
// nodes' descriptors (next: it is the next epoch's, which signOnce
// considers only past lead of the current one). It waits for minNodes,
// but not for ever: not once the signer has run for lead of an epoch
// (waited), and the next epoch's not within a tenth of an epoch of its
// start. The wait counts from the signer's start, not the epoch's: a
// network started late in an epoch once got that epoch's and the next
// one's documents signed at once from the first two nodes to export, and
// no usable document for 20 minutes.
func signReady(next bool, n, minNodes int, waited bool, untilNext, period time.Duration) bool {
	switch {
	case n == 0:
		return false
	case n >= minNodes || waited:
		return true
	default:
		return next && untilNext < period/10
	}
}

// readDescriptors reads every .desc file of dir, verified, by epoch; one
// per identity and epoch (a node that exported twice with different bytes
// keeps its newest file).
func readDescriptors(dir, network string) (map[uint64][]*interfaces.SignedDescriptor, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.desc"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	type key struct {
		e  uint64
		id string
	}
	seen := map[key]*interfaces.SignedDescriptor{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sd, err := interfaces.ParseSignedDescriptor(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if sd.Descriptor.Network != network {
			return nil, fmt.Errorf("%s: descriptor for network %q, not %q", f, sd.Descriptor.Network, network)
		}
		seen[key{sd.Descriptor.Epoch, string(sd.Descriptor.Identity)}] = sd
	}
	out := map[uint64][]*interfaces.SignedDescriptor{}
	for k, sd := range seen {
		out[k.e] = append(out[k.e], sd)
	}
	return out, nil
}

// writeAtomic writes a file whole or not at all (temp file, then rename).
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
