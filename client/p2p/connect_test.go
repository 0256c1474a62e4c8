//go:build !(js && wasm)

package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/core/pkidoc"
	"github.com/sottonet/sotto/core/sphinx"
)

// documentOf is a one-layer network of one mix and the fake provider, on
// clk, for the current epoch.
func documentOf(t *testing.T, f *fakeProvider, clk epoch.Clock) []byte {
	t.Helper()
	raw, err := f.host.Peerstore().PrivKey(f.host.ID()).Raw()
	if err != nil {
		t.Fatal(err)
	}
	provKey := ed25519.PrivateKey(raw)
	_, mixKey, _ := ed25519.GenerateKey(rand.Reader)
	e := clk.Now()
	params := pkidoc.NetworkParams{Hops: 1, PayloadLen: 512, Layers: 1, Mu: 10, LambdaP: 1, LambdaL: 1, LambdaD: 1, LambdaM: 1,
		EpochPeriod: clk.Period(), Genesis: clk.Genesis(), EpochGrace: clk.Grace()}
	var sds []*pkidoc.SignedDescriptor
	for _, m := range []struct {
		key  ed25519.PrivateKey
		role pkidoc.Role
	}{{provKey, pkidoc.RoleProvider}, {mixKey, pkidoc.RoleMix}} {
		pub := m.key.Public().(ed25519.PublicKey)
		d := &pkidoc.Descriptor{Network: "fakenet", Epoch: e, Identity: pub, PeerID: pkidoc.PeerIDOf(pub),
			Addrs: [][]byte{{4, 127, 0, 0, 1}}, Role: m.role}
		for i := range d.SphinxKeys {
			k, _ := sphinx.GenerateKey(rand.Reader)
			copy(d.SphinxKeys[i][:], k.PublicKey().Bytes())
		}
		sd, err := pkidoc.SignDescriptor(d, m.key)
		if err != nil {
			t.Fatal(err)
		}
		sds = append(sds, sd)
	}
	doc, err := pkidoc.NewDocument("fakenet", e, params, sds)
	if err != nil {
		t.Fatal(err)
	}
	b, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Connect needs only the provider's address: it takes the provider's key
// from the peer ID and the epoch clock from the provider's current
// document, and keeps both (and the address) in the Store, so the next
// run needs the Store alone. A client on another clock is told.
func TestConnectNeedsOnlyTheAddress(t *testing.T) {
	clk, err := epoch.New(time.Now().Add(-time.Hour).Truncate(time.Second), time.Minute, 6*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f := startFake(t, okReply)
	doc := documentOf(t, f, clk)
	f.setOn(func(_ int32, req *clientproto.Request) (*clientproto.Response, bool) {
		if req.Op == clientproto.OpDocument {
			return &clientproto.Response{Document: doc}, false
		}
		return &clientproto.Response{}, false
	})
	addr := f.addr(t, "").Addrs[0].String() + "/p2p/" + f.host.ID().String()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	path := filepath.Join(t.TempDir(), "state")
	st, err := client.OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Connect(ctxT(t), addr, client.Config{Store: st, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := c.Clock()
	if !ok || !got.Genesis().Equal(clk.Genesis()) || got.Period() != clk.Period() || got.Grace() != clk.Grace() {
		t.Fatalf("clock %v (%v), want the document's", got, ok)
	}
	identity := c.Identity()
	c.Close()
	st.Close()

	// The next run: the Store alone.
	st, err = client.OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if a, err := client.StoredProviderAddr(st); err != nil || a != addr {
		t.Fatalf("stored address %q (%v)", a, err)
	}
	c, err = Connect(ctxT(t), "", client.Config{Store: st, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Identity().Equal(identity) {
		t.Fatal("another identity after a restart")
	}
	c.Close()

	wrong, _ := epoch.New(clk.Genesis().Add(time.Second), clk.Period(), clk.Grace())
	if _, err := Connect(ctxT(t), addr, client.Config{Clock: wrong, Logger: log}); !errors.Is(err, client.ErrWrongClock) {
		t.Fatalf("Connect on another clock: %v, want ErrWrongClock", err)
	}
}

func TestOpenRefusesBadAddresses(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	for _, tt := range []struct{ name, addr string }{
		{"no address and no state", ""},
		{"an address without a peer ID", "/ip4/127.0.0.1/tcp/4001"},
		{"a peer ID that is no Ed25519 key", "/ip4/127.0.0.1/tcp/4001/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(tt.addr, client.Config{Identity: key}); err == nil {
				t.Fatal("opened")
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// A provider that is not there: Connect says so (Run would retry).
	if _, err := Connect(ctx, "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK", client.Config{Identity: key}); err == nil {
		t.Fatal("connected to nothing")
	}
}
