package provider

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/sottonet/sotto/client/p2p"
	"github.com/sottonet/sotto/core/clientproto"
	accountingfree "github.com/sottonet/sotto/examples/accounting-free"
	"github.com/sottonet/sotto/host/config"
	"github.com/sottonet/sotto/host/link"
	"github.com/sottonet/sotto/interfaces"
	storagebadger "github.com/sottonet/sotto/plugins/storage-badger"
)

// Every host, stream and Service must stop what it started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testPacketLength = 3130

// recordingBackend is a test double for the node: it records what it is
// handed and answers for a few layer-0 mixes and documents.
type recordingBackend struct {
	id     [32]byte
	mixes  map[[32]byte]bool
	docs   map[uint64][]byte
	busy   bool          // Inject and Forward report a full queue
	block  chan struct{} // Document waits for it when set
	waits  atomic.Int32  // Documents waiting on block
	mu     sync.Mutex
	inject int
	fwd    map[[32]byte]int
}

func newBackend() *recordingBackend {
	b := &recordingBackend{
		mixes: map[[32]byte]bool{{0xaa}: true},
		docs:  map[uint64][]byte{7: []byte("document of epoch 7")},
		fwd:   map[[32]byte]int{},
	}
	_, _ = rand.Read(b.id[:])
	return b
}

func (b *recordingBackend) NodeID() [32]byte { return b.id }

func (b *recordingBackend) Inject(p []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.busy {
		return fmt.Errorf("pipeline full: %w", clientproto.ErrBusy)
	}
	b.inject++
	return nil
}

func (b *recordingBackend) Forward(to [32]byte, p []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.mixes[to] {
		return errors.New("not a layer-0 mix")
	}
	if b.busy {
		return fmt.Errorf("link queue full: %w", clientproto.ErrBusy)
	}
	b.fwd[to]++
	return nil
}

func (b *recordingBackend) Document(ctx context.Context, epoch uint64) ([]byte, error) {
	if b.block != nil {
		b.waits.Add(1)
		defer b.waits.Add(-1)
		select {
		case <-b.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if d, ok := b.docs[epoch]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("epoch %d: %w", epoch, clientproto.ErrNoDocument)
}

func (b *recordingBackend) counts() (injected, forwarded int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.fwd {
		forwarded += n
	}
	return b.inject, forwarded
}

// tokenAccounting is the repository's free accounting example with a real
// token check in Redeem: a credential is good if it starts with "paid:",
// and is spent once.
type tokenAccounting struct {
	*accountingfree.Free
	mu    sync.Mutex
	spent map[string]bool
}

func newTokenAccounting() *tokenAccounting {
	return &tokenAccounting{Free: accountingfree.New(accountingfree.Config{}), spent: map[string]bool{}}
}

func (a *tokenAccounting) Redeem(_ context.Context, req *interfaces.RedeemRequest) (*interfaces.RedeemResponse, error) {
	c := string(req.Credential)
	if !strings.HasPrefix(c, "paid:") {
		return nil, interfaces.ErrPaymentRequired
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.spent[c] {
		return nil, interfaces.ErrDoubleSpend
	}
	a.spent[c] = true
	return &interfaces.RedeemResponse{Granted: req.Packets, Receipt: []byte("ok")}, nil
}

// Issue answers "buy:TAG" with the credential "paid:TAG"; an empty
// request is malformed and anything else refused.
func (a *tokenAccounting) Issue(_ context.Context, req *interfaces.IssueRequest) (*interfaces.IssueResponse, error) {
	r := string(req.Request)
	switch {
	case r == "":
		return nil, interfaces.ErrInvalidArgument
	case !strings.HasPrefix(r, "buy:"):
		return nil, interfaces.ErrPaymentRequired
	}
	return &interfaces.IssueResponse{Response: []byte("paid:" + strings.TrimPrefix(r, "buy:"))}, nil
}

// testProvider is a provider's host with the service installed, over a
// real Badger store in a temp dir.
type testProvider struct {
	host    host.Host
	svc     *Service
	backend *recordingBackend
	store   *storagebadger.Store
	reg     *prometheus.Registry
}

func startProvider(t testing.TB, change func(*Config)) *testProvider {
	t.Helper()
	sc := storagebadger.DefaultConfig(t.TempDir())
	sc.SyncWrites = false
	store, err := storagebadger.Open(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cfg := config.Default()
	cfg.Role = config.RoleProvider
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0/ws"}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := link.NewHost(&cfg, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	p := &testProvider{host: h, backend: newBackend(), store: store, reg: prometheus.NewRegistry()}
	pc := Config{
		Backend:             p.backend,
		Mailboxes:           store,
		PacketLength:        testPacketLength,
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer:          p.reg,
		MaxStreamsPerClient: 4,
		RequestTimeout:      5 * time.Second,
		CurrentEpoch:        func() uint64 { return 1 },
	}
	if change != nil {
		change(&pc)
	}
	p.svc, err = New(pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.svc.Close() })
	h.SetStreamHandler(clientproto.Protocol, p.svc.Handle)
	return p
}

// addr is the provider's loopback address of a transport ("tcp",
// "quic-v1", "ws").
func (p *testProvider) addr(t testing.TB, transport string) peer.AddrInfo {
	t.Helper()
	for _, a := range p.host.Addrs() {
		s := a.String()
		if !strings.HasPrefix(s, "/ip4/127.0.0.1/") {
			continue
		}
		var ok bool
		switch transport {
		case "tcp":
			ok = strings.Contains(s, "/tcp/") && !strings.HasSuffix(s, "/ws")
		case "quic-v1":
			ok = strings.HasSuffix(s, "/quic-v1")
		case "ws":
			ok = strings.HasSuffix(s, "/ws")
		}
		if ok {
			return peer.AddrInfo{ID: p.host.ID(), Addrs: []ma.Multiaddr{a}}
		}
	}
	t.Fatalf("no %s address among %v", transport, p.host.Addrs())
	return peer.AddrInfo{}
}

// testClient is a p2p client with its identity.
type testClient struct {
	*p2p.Conn
	pub ed25519.PublicKey
}

func (p *testProvider) dial(t testing.TB) *testClient {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := p2p.Dial(ctx, p2p.Options{Identity: priv, Provider: p.addr(t, "tcp"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &testClient{Conn: c, pub: pub}
}

// deliver stores payloads in a mailbox as the node would.
func (p *testProvider) deliver(t testing.TB, mb clientproto.MailboxID, payloads ...[]byte) []uint64 {
	t.Helper()
	req := &interfaces.AppendMailboxRequest{}
	for _, pl := range payloads {
		req.Messages = append(req.Messages, interfaces.MailboxMessage{Mailbox: mb, Payload: pl, Lifetime: time.Hour})
	}
	res, err := p.store.AppendMailbox(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res.IDs
}

// metric reads a counter or gauge of the service's registry; labels are
// name=value pairs that must all match.
func (p *testProvider) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
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
			}
		}
	}
	return sum
}

// rawClient is a bare libp2p host, for clients that misbehave or have
// keys of another type. It reaches the provider from 127.0.0.1.
func rawClient(t testing.TB, keyType int) host.Host {
	t.Helper()
	return rawClientAt(t, keyType, "")
}

// rawClientAt is rawClient reaching the provider from another loopback
// address (127.0.0.2, ...): it listens there, and libp2p's TCP dials from
// its listen address, so the provider sees the client at that address.
func rawClientAt(t testing.TB, keyType int, ip string) host.Host {
	t.Helper()
	key, _, err := crypto.GenerateKeyPair(keyType, 256)
	if err != nil {
		t.Fatal(err)
	}
	listen := libp2p.NoListenAddrs
	if ip != "" {
		listen = libp2p.ListenAddrStrings("/ip4/" + ip + "/tcp/0")
	}
	h, err := libp2p.New(libp2p.Identity(key), listen, libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func (p *testProvider) rawStream(t testing.TB, h host.Host) network.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, p.addr(t, "tcp")); err != nil {
		t.Fatal(err)
	}
	st, err := h.NewStream(ctx, p.host.ID(), clientproto.Protocol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Reset() })
	return st
}

// roundTrip writes one request on a raw stream and reads one reply.
func roundTrip(t testing.TB, st network.Stream, req *clientproto.Request) *clientproto.Response {
	t.Helper()
	frame, err := req.AppendFrame(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(frame); err != nil {
		t.Fatal(err)
	}
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	body, err := clientproto.ReadFrame(st, nil, clientproto.MaxResponseLength)
	if err != nil {
		t.Fatal(err)
	}
	var resp clientproto.Response
	if err := resp.Decode(body); err != nil {
		t.Fatal(err)
	}
	return &resp
}

func packet(b byte) []byte {
	p := make([]byte, testPacketLength)
	p[0] = b
	return p
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
