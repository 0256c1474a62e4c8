package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sottonet/sotto/client/p2p"
	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/pkidoc"
	"github.com/sottonet/sotto/core/sphinx"
	"github.com/sottonet/sotto/host/keystore"
	"github.com/sottonet/sotto/host/link"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/localnet"
)

// Parallel tests: go test gives each package's test binary 10 minutes,
// and this package's network tests took 580 s one after another on a
// quiet machine. The tests that only need a network of their own and
// check delivery (each with its own temp dirs, ports and, for the
// partition test, namespaces) run in parallel (t.Parallel, two at a time
// on CI's two cores). Tests that measure timing distributions (the
// downstream's), set process environment (t.Setenv), or build network
// namespaces that another test also builds stay sequential.

// startNet runs a network of `sotto node` processes (this test binary, as
// sotto) and waits until it routes.
func startNet(t *testing.T, spec localnet.Spec) *localnet.Net {
	t.Helper()
	if testing.Short() {
		t.Skip("starts node processes; skipped with -short")
	}
	spec.Dir, spec.Binary, spec.Env = t.TempDir(), os.Args[0], []string{"SOTTOTEST_MAIN=1"}
	ln, err := localnet.Start(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ln.Stop(20 * time.Second); err != nil {
			t.Errorf("stopping the network: %v", err)
		}
		if t.Failed() {
			for _, n := range ln.Nodes {
				b, _ := os.ReadFile(n.Log())
				t.Logf("--- %s log (last 3000 bytes):\n%s", n.Name, b[max(0, len(b)-3000):])
			}
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	if err := ln.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	return ln
}

func metric(t *testing.T, n *localnet.Node, name string, labels ...string) float64 {
	t.Helper()
	mf, err := n.Scrape(t.Context())
	if err != nil {
		t.Fatalf("scrape %s: %v", n.Name, err)
	}
	return localnet.Value(mf, name, labels...)
}

func waitMetric(t *testing.T, n *localnet.Node, timeout time.Duration, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got float64
		mf, err := n.Scrape(t.Context()) // fails while the node starts
		if err == nil {
			got = localnet.Value(mf, name, labels...)
			if got == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s%v = %v (%v) after %v, want %v", n.Name, name, labels, got, err, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReplayTagsSurviveSIGKILL: packets wait in a mix's scheduler; the mix
// is killed with SIGKILL and restarted; the same packets, captured on their
// way to it, are sent again from an admitted peer, and every one is dropped
// as a replay, because their tags were committed to storage before they were
// scheduled. A fresh packet still crosses the restarted mix.
func TestReplayTagsSurviveSIGKILL(t *testing.T) {
	replayTagsSurviveSIGKILL(t, replaySpec(), nil)
}

// replaySpec is the network of TestReplayTagsSurviveSIGKILL.
func replaySpec() localnet.Spec {
	return localnet.Spec{Layers: 2, MixesPerLayer: 1, Providers: 1,
		Params: interfaces.NetworkParams{Mu: 0.2, LambdaP: 1, LambdaL: 1, LambdaD: 1}, EpochPeriod: 2 * time.Minute} // μ = 0.2: delays up to 125 s accepted
}

// replayTagsSurviveSIGKILL is TestReplayTagsSurviveSIGKILL on spec;
// whileDown, if set, runs while the mix is down (a restart of its
// database, say).
func replayTagsSurviveSIGKILL(t *testing.T, spec localnet.Spec, whileDown func()) {
	ln := startNet(t, spec)
	prov := ln.Providers()[0]

	// A client of the provider, to send packets and read its mailbox.
	_, clientKey, _ := ed25519.GenerateKey(rand.Reader)
	ai, err := p2p.ParseProviderAddr(prov.Addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := p2p.Dial(t.Context(), p2p.Options{Identity: clientKey, Provider: ai})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	e := ln.Clock.Now()
	raw, err := conn.Document(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := pkidoc.ParseDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	layers := doc.Layers()
	hopOf := func(sd *pkidoc.SignedDescriptor, cmds ...sphinx.Command) sphinx.PathHop {
		k, _ := sd.Descriptor.SphinxKey(e)
		pub, err := sphinx.NewPublicKey(k[:])
		if err != nil {
			t.Fatal(err)
		}
		var id [32]byte
		copy(id[:], sd.Descriptor.Identity)
		return sphinx.PathHop{ID: id, PublicKey: pub, Commands: cmds}
	}
	provDesc := doc.Providers()[0]
	mailbox := clientproto.OwnMailbox(clientKey.Public().(ed25519.PublicKey))
	g, err := sphinx.NewGeometry(int(doc.Params.PayloadLen), int(doc.Params.Hops)+2, true)
	if err != nil {
		t.Fatal(err)
	}
	newPacket := func(delay time.Duration) []byte {
		payload, _ := clientproto.PackForward(g, nil, []byte("through the restarted mix"))
		pkt, err := sphinx.NewPacket(rand.Reader, g, []sphinx.PathHop{
			hopOf(provDesc, &sphinx.NodeDelay{}),
			hopOf(layers[0][0], &sphinx.NodeDelay{Delay: uint32(delay / time.Millisecond)}),
			hopOf(layers[1][0], &sphinx.NodeDelay{}),
			hopOf(provDesc, &sphinx.Recipient{ID: mailbox}),
		}, payload)
		if err != nil {
			t.Fatal(err)
		}
		return pkt
	}
	var mix0 *localnet.Node
	for _, n := range ln.Mixes() {
		if bytes.Equal(n.ID[:], layers[0][0].Descriptor.Identity) {
			mix0 = n
		}
	}

	// The provider's keys let the test see each packet as the mix gets it.
	provKeys, err := keystore.Open(filepath.Join(prov.Dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer provKeys.Close()
	provSphinx, _ := provKeys.Sphinx(e)
	unwrap := sphinx.NewUnwrapper(g, provSphinx)

	const n = 5
	var captured [][]byte
	for range n {
		pkt := newPacket(90 * time.Second) // held at the mix far longer than the test
		if err := conn.Send(t.Context(), prov.ID, pkt); err != nil {
			t.Fatal(err)
		}
		c := bytes.Clone(pkt)
		var res sphinx.Result
		if err := unwrap.Unwrap(c, &res); err != nil {
			t.Fatal(err)
		}
		captured = append(captured, c)
	}
	waitMetric(t, mix0, 20*time.Second, n, "sotto_queue_depth")

	if err := mix0.Kill(); err != nil {
		t.Fatal(err)
	}
	if whileDown != nil {
		whileDown()
	}
	if err := mix0.Start(); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, mix0, 60*time.Second, float64(len(ln.Nodes)-1), "sotto_admitted_peers")

	// Replay from an admitted peer: a host holding the provider's identity.
	pk, err := provKeys.Libp2pKey()
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(pk), libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	mai, err := peer.AddrInfoFromString(mix0.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(t.Context(), *mai); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStream(t.Context(), mai.ID, link.MixProtocol)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := link.NewWriter(s, g.PacketLength)
	for _, c := range captured {
		if err := w.WriteFrame(c); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Close()
	waitMetric(t, mix0, 20*time.Second, n, "sotto_packets_dropped_total", "reason=replay")
	if q := metric(t, mix0, "sotto_queue_depth"); q != 0 {
		t.Errorf("the restarted mix queued %v replayed packets", q)
	}

	// A fresh packet crosses the restarted mix into the mailbox.
	if err := conn.Send(t.Context(), prov.ID, newPacket(0)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		msgs, err := conn.Fetch(t.Context(), clientproto.MailboxRef{}, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 1 && bytes.HasPrefix(msgs[0].Payload, []byte("through the restarted mix")) {
			break
		}
		if len(msgs) > 1 || time.Now().After(deadline) {
			t.Fatalf("mailbox holds %d messages, want exactly the fresh one", len(msgs))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
