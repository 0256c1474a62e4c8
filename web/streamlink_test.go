package web_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	yamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	websocket "github.com/libp2p/go-libp2p/p2p/transport/websocket"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/client/p2p"
	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/internal/e2e"
	"github.com/sottonet/sotto/internal/localnet"
	"github.com/sottonet/sotto/web/streamlink"
)

// The browser's link without a browser: a client whose Provider is a
// streamlink.Link over go-libp2p streams on the provider's WebSocket
// address (what js-libp2p dials), and a native client on TCP, exchange
// messages both ways through a local network; then the provider restarts
// and the link opens a new stream by itself. It needs no Chromium, so the
// WebSocket listener and streamlink are tested wherever Go is.
func TestStreamLinkOverWebSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes; skipped with -short")
	}
	sotto := filepath.Join(t.TempDir(), "sotto")
	if out, err := exec.Command("go", "build", "-o", sotto, "../cmd/sotto").CombinedOutput(); err != nil {
		t.Fatalf("go build sotto: %v\n%s", err, out)
	}
	ln, err := localnet.Start(t.Context(), localnet.Spec{Layers: 2, MixesPerLayer: 1, Providers: 1,
		EpochPeriod: 2 * time.Minute, Dir: t.TempDir(), Binary: sotto,
		Params: interfaces.NetworkParams{Mu: 20, LambdaP: 5, LambdaL: 1, LambdaD: 1, LambdaM: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ln.Stop(20 * time.Second)
		if t.Failed() {
			for _, n := range ln.Nodes {
				b, _ := os.ReadFile(n.Log())
				t.Logf("--- %s log (last 2000 bytes):\n%s", n.Name, b[max(0, len(b)-2000):])
			}
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	if err := ln.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	prov := ln.Providers()[0]
	ai, err := p2p.ParseProviderAddr(prov.WSAddr)
	if err != nil {
		t.Fatal(err)
	}

	_, id, _ := ed25519.GenerateKey(rand.Reader)
	key, err := crypto.UnmarshalEd25519PrivateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	// Only the WebSocket transport: the stream cannot have come over TCP.
	h, err := libp2p.New(libp2p.Identity(key), libp2p.NoListenAddrs, libp2p.Transport(websocket.New),
		libp2p.Security(noise.ID, noise.New), libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
	var opens atomic.Int32
	open := func(ctx context.Context) (streamlink.Stream, error) {
		opens.Add(1)
		if err := h.Connect(ctx, ai); err != nil {
			return nil, err
		}
		st, err := h.NewStream(ctx, ai.ID, clientproto.Protocol)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	link, err := streamlink.Dial(ctx, open, nil)
	if err != nil {
		t.Fatalf("opening the client protocol on %s: %v", prov.WSAddr, err)
	}
	provID, err := p2p.ProviderID(ai.ID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Identity: id, Provider: link, ProviderID: provID, Messaging: e2e.Ratchet})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(rctx) }()
	defer func() { stop(); <-done; c.Close(); link.Close() }()
	mine, err := c.NewContact(ctx, client.ContactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	msgs := c.Messages()

	carol := startNative(t, ctx, prov.Addr)
	carol.send(t, ctx, mine.String(), "carol to the WebSocket client")
	ct, _ := client.ParseContact(carol.contact)
	if _, err := c.Send(ctx, ct, []byte("the WebSocket client to carol")); err != nil {
		t.Fatal(err)
	}
	carol.waitMessage(t, "the WebSocket client to carol", 90*time.Second)
	waitText(t, msgs, "carol to the WebSocket client")

	// The provider restarts: the link replaces its broken stream.
	before := opens.Load()
	if err := prov.Stop(20 * time.Second); err != nil {
		t.Logf("stopping the provider: %v", err)
	}
	if err := prov.Start(); err != nil {
		t.Fatal(err)
	}
	carol.send(t, ctx, mine.String(), "after the restart")
	waitText(t, msgs, "after the restart")
	if opens.Load() == before {
		t.Error("the link did not open a new stream after the provider restarted")
	}
}

func waitText(t *testing.T, msgs <-chan client.Message, text string) {
	t.Helper()
	tm := time.NewTimer(2 * time.Minute)
	defer tm.Stop()
	for {
		select {
		case m := <-msgs:
			if string(m.Body) == text {
				return
			}
		case <-tm.C:
			t.Fatalf("did not receive %q", text)
		}
	}
}
