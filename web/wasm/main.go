//go:build js && wasm

// Command wasm is Sotto's client for the browser: the Go client
// (package client), built with GOOS=js GOARCH=wasm and run in a Web
// Worker (src/worker.js), with the messaging layer (internal/e2e.Ratchet)
// and the pay-blindsig wallet as the native client has them. It reaches
// its provider through js-libp2p (bridge.go, src/net.js) and keeps its
// state in IndexedDB.
//
// It exports sottoGo to the worker: open, contact, send and stats, each
// returning a promise; events go out through sottoEmit.
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall/js"
	"time"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/internal/e2e"
	bswallet "github.com/sottonet/sotto/plugins/pay-blindsig/wallet"
	"github.com/sottonet/sotto/web/benchwork"
	"github.com/sottonet/sotto/web/streamlink"
)

// connectTimeout bounds the first contact with the provider.
const connectTimeout = 30 * time.Second

var (
	mu      sync.Mutex
	running *client.Client
)

func main() {
	api := js.Global().Get("Object").New()
	api.Set("open", promised(open))
	api.Set("contact", promised(contact))
	api.Set("send", promised(send))
	api.Set("stats", promised(stats))
	api.Set("bench", promised(func(context.Context, []js.Value) (any, error) {
		return benchwork.Run(300*time.Millisecond, 5)
	}))
	js.Global().Set("sottoGo", api)
	emit("ready", map[string]any{})
	select {}
}

// promised exports f as a function returning a promise of its result
// (JSON), run on its own goroutine.
func promised(f func(ctx context.Context, args []js.Value) (any, error)) js.Func {
	return js.FuncOf(func(_ js.Value, args []js.Value) any {
		args = append([]js.Value(nil), args...)
		var resolve, reject js.Value
		executor := js.FuncOf(func(_ js.Value, a []js.Value) any {
			resolve, reject = a[0], a[1]
			return nil
		})
		p := js.Global().Get("Promise").New(executor) // runs executor at once
		executor.Release()
		go func() {
			v, err := f(context.Background(), args)
			if err != nil {
				reject.Invoke(js.Global().Get("Error").New(err.Error()))
				return
			}
			b, _ := json.Marshal(v)
			resolve.Invoke(string(b))
		}()
		return p
	})
}

func emit(kind string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	if f := js.Global().Get("sottoEmit"); f.Type() == js.TypeFunction {
		f.Invoke(kind, string(b))
	}
}

func current() (*client.Client, error) {
	mu.Lock()
	defer mu.Unlock()
	if running == nil {
		return nil, errors.New("no client open")
	}
	return running, nil
}

// open(addr, pay): opens the client on the provider at addr (a
// WebSocket multiaddr ending in /p2p/PEER-ID; "" takes the one kept in the
// state) and runs it. pay is "blindsig" (the default) or "none".
func open(ctx context.Context, args []js.Value) (any, error) {
	mu.Lock()
	if running != nil {
		mu.Unlock()
		return nil, errors.New("a client is already open")
	}
	mu.Unlock()
	addr, pay := "", "blindsig"
	if len(args) > 0 && args[0].Type() == js.TypeString {
		addr = args[0].String()
	}
	if len(args) > 1 && args[1].Type() == js.TypeString && args[1].String() != "" {
		pay = args[1].String()
	}
	store := idbStore{}
	if addr == "" {
		var err error
		if addr, err = client.StoredProviderAddr(store); err != nil {
			return nil, err
		}
		if addr == "" {
			return nil, errors.New("no provider address, and none in the saved state")
		}
	}
	provID, err := providerKey(addr)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(consoleWriter{}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := client.Config{
		Store:        store,
		ProviderID:   provID,
		ProviderAddr: addr,
		Logger:       log,
		Messaging:    e2e.Ratchet,
		OnEvent: func(e client.Event) {
			ev := map[string]any{"state": e.State.String(), "epoch": e.Epoch}
			if e.Err != nil {
				ev["err"] = e.Err.Error()
			}
			emit("conn", ev)
		},
		OnStatus: func(s client.MessageStatus) {
			ev := map[string]any{"id": s.ID.String(), "state": s.State.String(), "packets": s.Packets}
			if !s.Finished.IsZero() {
				ev["latencyMs"] = s.Finished.Sub(s.Queued).Milliseconds()
			}
			if s.Err != nil {
				ev["err"] = s.Err.Error()
			}
			emit("status", ev)
		},
		Dial: func(ctx context.Context, identity ed25519.PrivateKey) (client.Provider, error) {
			return dial(ctx, addr, identity)
		},
	}
	switch pay {
	case "blindsig":
		cfg.Wallet = bswallet.New(bswallet.Options{})
	case "none":
	default:
		return nil, fmt.Errorf("pay %q: want blindsig or none", pay)
	}
	c, err := client.New(cfg)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	err = c.Connect(cctx)
	cancel()
	if _, known := c.Clock(); err != nil && !known {
		_ = c.Close()
		return nil, fmt.Errorf("reaching the provider: %w", err)
	}
	mu.Lock()
	running = c
	mu.Unlock()
	go func() {
		if err := c.Run(context.Background()); err != nil {
			emit("error", map[string]any{"err": "client stopped: " + err.Error()})
		}
	}()
	go func() {
		for m := range c.Messages() {
			ev := map[string]any{"id": m.ID.String(), "text": string(m.Body), "received": m.Received.UnixMilli(), "viaSURB": m.ViaSURB}
			if m.Sender != nil {
				ev["sender"] = hex.EncodeToString(m.Sender)
			}
			emit("message", ev)
		}
	}()
	go func() {
		for range time.Tick(500 * time.Millisecond) {
			emit("stats", statsOf(c))
		}
	}()
	pub := c.Identity().Public().(ed25519.PublicKey)
	return map[string]any{"addr": addr, "identity": hex.EncodeToString(pub)}, nil
}

// providerKey is the provider's Sotto node ID, from the peer ID in addr.
func providerKey(addr string) (id [32]byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("provider address %q: %v", addr, r)
		}
	}()
	v := js.Global().Get("sottoNet").Call("providerKey", addr)
	b := fromJS(v)
	if len(b) != 32 {
		return id, fmt.Errorf("provider address %q: its peer ID is not an Ed25519 key", addr)
	}
	return [32]byte(b), nil
}

// dial starts a js-libp2p node under the client's identity and opens the
// client protocol to the provider through it.
func dial(ctx context.Context, addr string, identity ed25519.PrivateKey) (client.Provider, error) {
	node, err := call(ctx, js.Global().Get("sottoNet"), "start", toJS(identity))
	if err != nil {
		return nil, fmt.Errorf("starting js-libp2p: %w", err)
	}
	opener := func(ctx context.Context) (streamlink.Stream, error) {
		st, err := call(ctx, node, "stream", addr)
		if err != nil {
			return nil, err
		}
		return &jsStream{v: st}, nil
	}
	stop := func() error {
		_, err := call(context.Background(), node, "stop")
		return err
	}
	return streamlink.Dial(ctx, opener, stop)
}

// contact(anonymous): a new contact string of this client.
func contact(ctx context.Context, args []js.Value) (any, error) {
	c, err := current()
	if err != nil {
		return nil, err
	}
	anon := len(args) > 0 && args[0].Truthy()
	ct, err := c.NewContact(ctx, client.ContactOptions{Anonymous: anon})
	if err != nil {
		return nil, err
	}
	return ct.String(), nil
}

// send(contact, text): queues a message; its progress comes as "status"
// events.
func send(ctx context.Context, args []js.Value) (any, error) {
	c, err := current()
	if err != nil {
		return nil, err
	}
	if len(args) < 2 {
		return nil, errors.New("send(contact, text)")
	}
	to, err := client.ParseContact(args[0].String())
	if err != nil {
		return nil, err
	}
	id, err := c.Send(ctx, to, []byte(args[1].String()))
	if err != nil {
		return nil, err
	}
	return id.String(), nil
}

func stats(context.Context, []js.Value) (any, error) {
	c, err := current()
	if err != nil {
		return nil, err
	}
	return statsOf(c), nil
}

func statsOf(c *client.Client) map[string]any {
	s := c.Stats()
	conn := c.Connection()
	lat := make([]int64, len(s.ACKLatencies))
	for i, d := range s.ACKLatencies {
		lat[i] = d.Milliseconds()
	}
	return map[string]any{
		"payload": s.PacketsPayload, "loop": s.PacketsLoop, "drop": s.PacketsDrop,
		"loopsSent": s.LoopsSent, "loopsReturned": s.LoopsReturned, "loopsLost": s.LoopsLost,
		"sent": s.MessagesSent, "acked": s.MessagesAcked, "delivered": s.MessagesDelivered,
		"sendErrors": s.SendErrors, "payments": s.Payments, "latenciesMs": lat,
		"subscriptions": s.Subscriptions, "pushFrames": s.PushFrames, "pushSlots": s.PushSlots,
		"pushMessages": s.PushMessages, "pulses": s.Pulses,
		"conn": conn.State.String(), "epoch": epochNow(c, conn.Epoch),
	}
}

// consoleWriter sends the client's logs to the worker's console.
type consoleWriter struct{}

func (consoleWriter) Write(p []byte) (int, error) {
	js.Global().Get("console").Call("log", string(p))
	return len(p), nil
}

// epochNow is the epoch by the client's clock (or the document's).
func epochNow(c *client.Client, doc uint64) uint64 {
	if clk, ok := c.Clock(); ok {
		return clk.At(time.Now())
	}
	return doc
}
