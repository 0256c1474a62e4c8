//go:build !(js && wasm)

package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
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
	yamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"

	"github.com/sottonet/sotto/core/clientproto"
)

// Conns must stop their hosts and readers when closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeProvider is a provider's host with a scripted client-protocol
// handler: the conn package is tested here against the wire format alone;
// host/provider tests the two together.
type fakeProvider struct {
	host    host.Host
	streams atomic.Int32
	mu      sync.Mutex
	// on answers a request; nil means no reply; reset resets the stream
	// instead.
	on func(stream int32, req *clientproto.Request) (resp *clientproto.Response, reset bool)
}

func (f *fakeProvider) setOn(on func(int32, *clientproto.Request) (*clientproto.Response, bool)) {
	f.mu.Lock()
	f.on = on
	f.mu.Unlock()
}

func startFake(t *testing.T, on func(int32, *clientproto.Request) (*clientproto.Response, bool)) *fakeProvider {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A bare libp2p host with a provider's transports: this package is
	// tested against the wire format alone, without the node's link code.
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0/ws"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Transport(websocket.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	f := &fakeProvider{host: h, on: on}
	h.SetStreamHandler(clientproto.Protocol, f.handle)
	return f
}

func (f *fakeProvider) handle(st network.Stream) {
	n := f.streams.Add(1)
	var wmu sync.Mutex
	for {
		body, err := clientproto.ReadFrame(st, nil, clientproto.MaxRequestLength)
		if err != nil {
			st.Reset()
			return
		}
		req := new(clientproto.Request)
		if err := req.Decode(body); err != nil {
			st.Reset()
			return
		}
		f.mu.Lock()
		on := f.on
		f.mu.Unlock()
		resp, reset := on(n, req)
		if reset {
			st.Reset()
			return
		}
		if resp == nil {
			continue
		}
		resp.ID = req.ID
		if resp.Op == 0 { // a test may answer with another op on purpose
			resp.Op = req.Op
		}
		frame, err := resp.AppendFrame(nil)
		if err != nil {
			st.Reset()
			return
		}
		wmu.Lock()
		_, err = st.Write(frame)
		wmu.Unlock()
		if err != nil {
			return
		}
	}
}

func okReply(int32, *clientproto.Request) (*clientproto.Response, bool) {
	return &clientproto.Response{}, false
}

func (f *fakeProvider) addr(t *testing.T, suffix string) peer.AddrInfo {
	t.Helper()
	for _, a := range f.host.Addrs() {
		s := a.String()
		if strings.HasPrefix(s, "/ip4/127.0.0.1/") && strings.HasSuffix(s, suffix) {
			return peer.AddrInfo{ID: f.host.ID(), Addrs: []ma.Multiaddr{a}}
		}
	}
	t.Fatalf("no %s address among %v", suffix, f.host.Addrs())
	return peer.AddrInfo{}
}

func dial(t *testing.T, f *fakeProvider, suffix string) *Conn {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, Options{Identity: priv, Provider: f.addr(t, suffix), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDialOverEveryTransport(t *testing.T) {
	f := startFake(t, func(_ int32, req *clientproto.Request) (*clientproto.Response, bool) {
		return &clientproto.Response{Document: []byte("doc")}, false
	})
	for _, tt := range []struct{ name, suffix string }{
		{"a client reaches its provider over TCP", "/tcp/" + portOf(t, f, "tcp")},
		{"a client reaches its provider over QUIC", "/quic-v1"},
		{"a client reaches its provider over WebSocket", "/ws"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, f, tt.suffix)
			doc, err := c.Document(ctxT(t), 1)
			if err != nil || string(doc) != "doc" {
				t.Fatalf("Document = %q, %v", doc, err)
			}
		})
	}
}

// portOf is the TCP (not WebSocket) port of f.
func portOf(t *testing.T, f *fakeProvider, proto string) string {
	t.Helper()
	for _, a := range f.host.Addrs() {
		s := a.String()
		if strings.HasPrefix(s, "/ip4/127.0.0.1/tcp/") && !strings.HasSuffix(s, "/ws") {
			return strings.TrimPrefix(s, "/ip4/127.0.0.1/tcp/")
		}
	}
	t.Fatalf("no %s address", proto)
	return ""
}

func TestCallsCarryTheirFields(t *testing.T) {
	var mu sync.Mutex
	var got []clientproto.Request
	f := startFake(t, func(_ int32, req *clientproto.Request) (*clientproto.Response, bool) {
		mu.Lock()
		r := *req
		r.Packet = append([]byte(nil), req.Packet...)
		r.Credential = append([]byte(nil), req.Credential...)
		got = append(got, r)
		mu.Unlock()
		switch req.Op {
		case clientproto.OpFetch:
			return &clientproto.Response{Messages: []clientproto.Message{{ID: 5, Expires: time.UnixMilli(1000), StoredMessage: clientproto.StoredMessage{Payload: []byte("m")}}}}, false
		case clientproto.OpRedeem:
			return &clientproto.Response{Granted: 3, Receipt: []byte("r")}, false
		case clientproto.OpDocument:
			return &clientproto.Response{Code: clientproto.CodeNotFound}, false
		}
		return &clientproto.Response{}, false
	})
	c := dial(t, f, "/tcp/"+portOf(t, f, "tcp"))
	ctx := ctxT(t)
	ref := clientproto.MailboxRef{SURB: true, Capability: [16]byte{7}}
	if err := c.Send(ctx, [32]byte{1}, []byte("packet")); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(ctx, ref, 4, 10)
	if err != nil || len(msgs) != 1 || msgs[0].ID != 5 || string(msgs[0].Payload) != "m" {
		t.Fatalf("Fetch = %+v, %v", msgs, err)
	}
	ids := make([]uint64, clientproto.MaxAckIDs+1)
	if err := c.Ack(ctx, ref, ids); err != nil {
		t.Fatal(err)
	}
	granted, receipt, err := c.Redeem(ctx, 9, 3, []byte("cred"))
	if err != nil || granted != 3 || string(receipt) != "r" {
		t.Fatalf("Redeem = %d, %q, %v", granted, receipt, err)
	}
	if _, err := c.Document(ctx, 2); !errors.Is(err, clientproto.ErrNoDocument) {
		t.Fatalf("Document err = %v, want ErrNoDocument", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 6 {
		t.Fatalf("provider saw %d requests, want 6 (an ack of %d IDs is split in two)", len(got), len(ids))
	}
	if got[0].FirstHop != [32]byte{1} || string(got[0].Packet) != "packet" ||
		got[1].Mailbox != ref || got[1].After != 4 || got[1].Limit != 10 ||
		len(got[2].IDs) != clientproto.MaxAckIDs || len(got[3].IDs) != 1 ||
		got[4].Epoch != 9 || got[4].Packets != 3 || string(got[4].Credential) != "cred" {
		t.Fatalf("requests as the provider saw them: %+v", got)
	}
}

func TestABrokenStreamIsReplacedOnce(t *testing.T) {
	tests := []struct {
		name        string
		op          clientproto.Op
		resetFirst  int32 // streams up to this one reset on their first request
		wantErr     bool
		wantStreams int32
	}{
		{"a send on a broken stream is retried on a new one", clientproto.OpSend, 1, false, 2},
		{"a redeem that reached a broken stream is not repeated", clientproto.OpRedeem, 1, true, 1},
		{"a call fails when the new stream breaks too", clientproto.OpSend, 2, true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, func(stream int32, req *clientproto.Request) (*clientproto.Response, bool) {
				return &clientproto.Response{}, stream <= tt.resetFirst
			})
			c := dial(t, f, "/tcp/"+portOf(t, f, "tcp"))
			var err error
			if tt.op == clientproto.OpSend {
				err = c.Send(ctxT(t), [32]byte{}, []byte("p"))
			} else {
				_, _, err = c.Redeem(ctxT(t), 1, 1, nil)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if n := f.streams.Load(); n != tt.wantStreams {
				t.Fatalf("%d streams opened, want %d", n, tt.wantStreams)
			}
			// Whatever happened, the next call gets a fresh stream.
			f.setOn(okReply)
			if err := c.Send(ctxT(t), [32]byte{}, []byte("p")); err != nil {
				t.Fatalf("a later send: %v", err)
			}
		})
	}
}

func TestCallsHonourTheirContext(t *testing.T) {
	f := startFake(t, func(int32, *clientproto.Request) (*clientproto.Response, bool) { return nil, false })
	c := dial(t, f, "/tcp/"+portOf(t, f, "tcp"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.Send(ctx, [32]byte{}, []byte("p")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("returned after %v", d)
	}
}

func TestCloseEndsCallsInProgress(t *testing.T) {
	f := startFake(t, func(int32, *clientproto.Request) (*clientproto.Response, bool) { return nil, false })
	c := dial(t, f, "/tcp/"+portOf(t, f, "tcp"))
	errc := make(chan error, 1)
	go func() { errc <- c.Send(context.Background(), [32]byte{}, []byte("p")) }()
	time.Sleep(50 * time.Millisecond) // let the send be waiting
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("err = %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call outlived Close")
	}
	if err := c.Send(ctxT(t), [32]byte{}, []byte("p")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestRepliesFindTheirCallers(t *testing.T) {
	// The provider answers in reverse order of arrival, in batches of 8.
	var mu sync.Mutex
	var held []*clientproto.Request
	f := startFake(t, nil)
	var streamMu sync.Mutex
	f.host.SetStreamHandler(clientproto.Protocol, func(st network.Stream) {
		for {
			body, err := clientproto.ReadFrame(st, nil, clientproto.MaxRequestLength)
			if err != nil {
				st.Reset()
				return
			}
			req := new(clientproto.Request)
			if err := req.Decode(body); err != nil {
				st.Reset()
				return
			}
			mu.Lock()
			held = append(held, req)
			batch := held
			if len(held) == 8 {
				held = nil
			}
			mu.Unlock()
			if len(batch) < 8 {
				continue
			}
			for i := len(batch) - 1; i >= 0; i-- {
				r := batch[i]
				resp := clientproto.Response{ID: r.ID, Op: r.Op, Granted: r.Packets}
				frame, _ := resp.AppendFrame(nil)
				streamMu.Lock()
				_, _ = st.Write(frame)
				streamMu.Unlock()
			}
		}
	})
	c := dial(t, f, "/tcp/"+portOf(t, f, "tcp"))
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			granted, _, err := c.Redeem(ctxT(t), 0, uint64(i), nil)
			if err != nil || granted != uint64(i) {
				t.Errorf("call %d got %d, %v", i, granted, err)
			}
		})
	}
	wg.Wait()
}

func TestParseProviderAddr(t *testing.T) {
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	id, _ := peer.IDFromPrivateKey(key)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"a TCP address with a peer ID parses", "/ip4/127.0.0.1/tcp/4001/p2p/" + id.String(), true},
		{"a WebSocket address with a peer ID parses", "/dns4/provider.example/tcp/443/wss/p2p/" + id.String(), true},
		{"an address without a peer ID is refused", "/ip4/127.0.0.1/tcp/4001", false},
		{"a bad peer ID is refused", "/ip4/127.0.0.1/tcp/4001/p2p/notapeer", false},
		{"text that is no multiaddr is refused", "provider.example:4001", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ai, err := ParseProviderAddr(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v", err)
			}
			if tt.ok && (ai.ID != id || len(ai.Addrs) != 1) {
				t.Fatalf("parsed %+v", ai)
			}
		})
	}
}

func TestDialRefusesBadOptions(t *testing.T) {
	f := startFake(t, okReply)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	otherID, _ := peer.IDFromPrivateKey(other)
	good := f.addr(t, "/quic-v1")
	tests := []struct {
		name string
		o    Options
	}{
		{"a missing identity is refused", Options{Provider: good}},
		{"a provider without addresses is refused", Options{Identity: priv, Provider: peer.AddrInfo{ID: good.ID}}},
		{"a provider that is not who the address says is refused", Options{Identity: priv, Provider: peer.AddrInfo{ID: otherID, Addrs: good.Addrs}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := Dial(ctx, tt.o)
			if err == nil {
				c.Close()
				t.Fatal("dialled")
			}
		})
	}
}

// A reply of another op than its request's is refused, not read as, say, an
// empty mailbox.
func TestAReplyOfAnotherOpIsRefused(t *testing.T) {
	f := startFake(t, func(int32, *clientproto.Request) (*clientproto.Response, bool) {
		return &clientproto.Response{Op: clientproto.OpSend}, false
	})
	c := dial(t, f, "")
	_, err := c.Fetch(ctxT(t), clientproto.MailboxRef{}, 0, 0)
	if !errors.Is(err, clientproto.ErrMalformed) {
		t.Fatalf("Fetch answered by a Send reply: err = %v, want ErrMalformed", err)
	}
}
