// Package e2e wires the end-to-end messaging layer into the client: it
// adapts a Messaging plugin (interfaces.Messaging, in process or over
// gRPC) to client.Messaging, and the client's own state (client.MessagingKV)
// to the interfaces.KV the plugin keeps its state in. cmd/sotto and
// internal/demo build every client with Ratchet, so send, recv and the demo
// seal every message through plugins/msg-ratchet. The client itself
// imports no plugin (it also builds for js/wasm).
package e2e

import (
	"context"
	"fmt"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/interfaces"
	msgratchet "github.com/sottonet/sotto/plugins/msg-ratchet"
)

// Namespace is the namespace of the client's state the ratchet lives in.
const Namespace = "ratchet"

// Ratchet is a client.Config.Messaging: plugins/msg-ratchet in process,
// its state in the client's state.
func Ratchet(kv *client.MessagingKV) (client.Messaging, error) {
	r, err := msgratchet.Open(context.Background(), KV(kv), Namespace)
	if err != nil {
		return nil, err
	}
	return Adapt(r), nil
}

// Adapt makes a Messaging plugin the client's messaging layer.
func Adapt(m interfaces.Messaging) client.Messaging { return adapter{m} }

type adapter struct{ m interfaces.Messaging }

func (a adapter) ContactCard(ctx context.Context) ([]byte, error) {
	r, err := a.m.ContactCard(ctx, &interfaces.ContactCardRequest{})
	if err != nil {
		return nil, err
	}
	return r.Card, nil
}

func (a adapter) StartSession(ctx context.Context, card []byte) (client.SessionID, error) {
	r, err := a.m.StartSession(ctx, &interfaces.StartSessionRequest{PeerCard: card})
	if err != nil {
		return client.SessionID{}, err
	}
	return client.SessionID(r.Session), nil
}

func (a adapter) Encrypt(ctx context.Context, s client.SessionID, body []byte) ([]byte, error) {
	r, err := a.m.Encrypt(ctx, &interfaces.EncryptRequest{Session: interfaces.SessionID(s), Body: body})
	if err != nil {
		return nil, err
	}
	return r.Ciphertext, nil
}

func (a adapter) Decrypt(ctx context.Context, ct []byte) ([]byte, []byte, error) {
	r, err := a.m.Decrypt(ctx, &interfaces.DecryptRequest{Ciphertext: ct})
	if err != nil {
		return nil, nil, err
	}
	return r.PeerIdentity, r.Body, nil
}

// KV is the client's messaging state as an interfaces.KV. Writes are
// durable at the client's next save (client.MessagingKV), which the client
// makes before anything that depends on them leaves or is acknowledged.
func KV(kv *client.MessagingKV) interfaces.KV { return stateKV{kv} }

type stateKV struct{ kv *client.MessagingKV }

func checkNS(ns string) error {
	if ns == "" || len(ns) > 64 {
		return fmt.Errorf("%w: namespace of %d bytes", interfaces.ErrInvalidArgument, len(ns))
	}
	return nil
}

func (s stateKV) KVPut(ctx context.Context, req *interfaces.KVPutRequest) (*interfaces.KVPutResponse, error) {
	if err := checkNS(req.Namespace); err != nil {
		return nil, err
	}
	entries := make([]client.KVEntry, len(req.Entries))
	for i, e := range req.Entries {
		if len(e.Key) == 0 || len(e.Key) > 1024 || e.Lifetime != 0 {
			return nil, fmt.Errorf("%w: entry %d (key of %d bytes, lifetime %v): the client's state keeps keys of 1..1024 bytes that never expire",
				interfaces.ErrInvalidArgument, i, len(e.Key), e.Lifetime)
		}
		entries[i] = client.KVEntry{Key: e.Key, Value: e.Value, IfAbsent: e.IfAbsent}
	}
	return &interfaces.KVPutResponse{Applied: s.kv.Put(req.Namespace, entries)}, nil
}

func (s stateKV) KVGet(ctx context.Context, req *interfaces.KVGetRequest) (*interfaces.KVGetResponse, error) {
	if err := checkNS(req.Namespace); err != nil {
		return nil, err
	}
	resp := &interfaces.KVGetResponse{Values: make([][]byte, len(req.Keys)), Found: make([]bool, len(req.Keys))}
	for i, k := range req.Keys {
		resp.Values[i], resp.Found[i] = s.kv.Get(req.Namespace, k)
	}
	return resp, nil
}

func (s stateKV) KVDelete(ctx context.Context, req *interfaces.KVDeleteRequest) (*interfaces.KVDeleteResponse, error) {
	if err := checkNS(req.Namespace); err != nil {
		return nil, err
	}
	s.kv.Delete(req.Namespace, req.Keys)
	return &interfaces.KVDeleteResponse{}, nil
}

func (s stateKV) KVList(ctx context.Context, req *interfaces.KVListRequest) (*interfaces.KVListResponse, error) {
	if err := checkNS(req.Namespace); err != nil {
		return nil, err
	}
	return &interfaces.KVListResponse{Keys: s.kv.List(req.Namespace, req.Prefix, req.After, req.Limit)}, nil
}
