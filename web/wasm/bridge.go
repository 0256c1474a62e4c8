//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall/js"
)

// The bridge: what the Go client needs from JavaScript, as globals the
// worker sets before it starts this program (src/worker.js).
//
//	sottoNet.providerKey(addr) Uint8Array(32)       the provider's Ed25519 key, from its peer ID
//	sottoNet.start(identity Uint8Array(64)) Promise<node>   a js-libp2p node under the client's key
//	node.stream(addr) Promise<stream>                  dial (if needed) and open /sotto/client/1.0.0
//	node.stop() Promise
//	stream.read() Promise<Uint8Array|null>             null at the end of the stream
//	stream.write(Uint8Array) Promise
//	stream.reset()
//	sottoStore.load() Promise<Uint8Array|null>         the client's state in IndexedDB
//	sottoStore.save(Uint8Array) Promise                resolves once the transaction committed
//	sottoEmit(kind string, json string)                an event for the page

// await waits for a JavaScript promise; it must not run on the goroutine
// of a JavaScript callback (it would deadlock the event loop).
func await(ctx context.Context, p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	var then, catch js.Func
	then = js.FuncOf(func(_ js.Value, args []js.Value) any {
		v := js.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		ch <- result{v: v}
		return nil
	})
	catch = js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := "rejected"
		if len(args) > 0 {
			msg = jsErrorString(args[0])
		}
		ch <- result{err: errors.New(msg)}
		return nil
	})
	p.Call("then", then, catch)
	select {
	case r := <-ch:
		then.Release()
		catch.Release()
		return r.v, r.err
	case <-ctx.Done():
		go func() { // release once the promise settles
			<-ch
			then.Release()
			catch.Release()
		}()
		return js.Undefined(), ctx.Err()
	}
}

// call calls a JavaScript function that returns a promise, turning a
// synchronous throw into an error.
func call(ctx context.Context, obj js.Value, method string, args ...any) (v js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %v", method, r)
		}
	}()
	return await(ctx, obj.Call(method, args...))
}

func jsErrorString(v js.Value) string {
	if v.Type() == js.TypeObject && v.Get("message").Type() == js.TypeString {
		return v.Get("message").String()
	}
	return v.Call("toString").String()
}

func toJS(b []byte) js.Value {
	u := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(u, b)
	return u
}

func fromJS(v js.Value) []byte {
	b := make([]byte, v.Get("length").Int())
	js.CopyBytesToGo(b, v)
	return b
}

// jsStream is a js-libp2p stream as a streamlink.Stream.
type jsStream struct {
	v    js.Value
	rest []byte
}

func (s *jsStream) Read(p []byte) (int, error) {
	for len(s.rest) == 0 {
		v, err := call(context.Background(), s.v, "read")
		if err != nil {
			return 0, err
		}
		if v.IsNull() || v.IsUndefined() {
			return 0, io.EOF
		}
		s.rest = fromJS(v)
	}
	n := copy(p, s.rest)
	s.rest = s.rest[n:]
	return n, nil
}

func (s *jsStream) Write(p []byte) (int, error) {
	if _, err := call(context.Background(), s.v, "write", toJS(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *jsStream) Reset() error {
	s.v.Call("reset")
	return nil
}

// idbStore is a client.Store in the browser's IndexedDB (sottoStore).
type idbStore struct{}

func (idbStore) Load() ([]byte, error) {
	v, err := call(context.Background(), js.Global().Get("sottoStore"), "load")
	if err != nil {
		return nil, fmt.Errorf("web: loading the state from IndexedDB: %w", err)
	}
	if v.IsNull() || v.IsUndefined() {
		return nil, nil
	}
	return fromJS(v), nil
}

func (idbStore) Save(state []byte) error {
	if _, err := call(context.Background(), js.Global().Get("sottoStore"), "save", toJS(state)); err != nil {
		return fmt.Errorf("web: saving the state to IndexedDB: %w", err)
	}
	return nil
}
