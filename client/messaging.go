// The end-to-end messaging layer above fragments: an implementation of
// Messaging (plugins/msg-ratchet, wired in by cmd/sotto through
// internal/e2e) seals every message body, and its state lives in the
// client's own state (MessagingKV), saved in the same write as the inbox
// and the outbox.

package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Messaging is the end-to-end layer the client seals message bodies
// through: an X3DH-style start from the card a contact carries, then a
// ratchet (docs/SPEC.md, "Messaging layer"). It mirrors the Messaging
// plugin kind (interfaces.Messaging) with plain types, so that the client
// imports no plugin machinery; internal/e2e adapts one to the other.
//
// The client calls Decrypt with its own lock held (the decrypted message
// and the ratchet state it leaves are saved in one write), so an
// implementation must not call back into the client.
type Messaging interface {
	// ContactCard returns the local user's current card (at most
	// MaxCardLen bytes), to put in contacts.
	ContactCard(ctx context.Context) ([]byte, error)
	// StartSession returns the session with the owner of card, starting
	// one if there is none.
	StartSession(ctx context.Context, card []byte) (SessionID, error)
	// Encrypt seals body in a session.
	Encrypt(ctx context.Context, s SessionID, body []byte) ([]byte, error)
	// Decrypt opens a ciphertext addressed to the local user, and names
	// its sender by the identity key in their card.
	Decrypt(ctx context.Context, ciphertext []byte) (sender []byte, body []byte, err error)
}

// SessionID names a messaging session locally.
type SessionID [16]byte

// MaxCardLen bounds the messaging card a contact carries.
const MaxCardLen = 1024

// ErrNoMessaging: a message sealed by the messaging layer reached a client
// that has none (Config.Messaging), or the layer refused it.
var ErrNoMessaging = errors.New("client: no messaging layer")

// MessagingKV is the key-value space the messaging layer keeps its state
// in: part of the client's state, saved by the Store in the same write as
// the rest of it. Puts take effect at once in memory and are durable at the
// client's next save, which comes before any packet that depends on them
// leaves and before any fragment they decrypted is acknowledged. Safe for
// concurrent use.
type MessagingKV struct {
	mu    sync.Mutex
	m     map[string]map[string][]byte // namespace → key → value
	dirty atomic.Bool
}

func newMessagingKV() *MessagingKV { return &MessagingKV{m: map[string]map[string][]byte{}} }

// Get returns the value of key in namespace ns.
func (kv *MessagingKV) Get(ns string, key []byte) ([]byte, bool) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	v, ok := kv.m[ns][string(key)]
	return bytes.Clone(v), ok
}

// KVEntry is one write of Put.
type KVEntry struct {
	Key, Value []byte
	IfAbsent   bool
}

// Put writes entries into namespace ns at once (no save sees half of
// them); applied[i] reports whether entry i was written (an IfAbsent entry
// whose key exists is not).
func (kv *MessagingKV) Put(ns string, entries []KVEntry) (applied []bool) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	space := kv.m[ns]
	if space == nil {
		space = map[string][]byte{}
		kv.m[ns] = space
	}
	for _, e := range entries {
		if _, ok := space[string(e.Key)]; ok && e.IfAbsent {
			applied = append(applied, false)
			continue
		}
		space[string(e.Key)] = bytes.Clone(e.Value)
		applied = append(applied, true)
	}
	kv.dirty.Store(true)
	return applied
}

// Delete removes keys from namespace ns.
func (kv *MessagingKV) Delete(ns string, keys [][]byte) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	for _, k := range keys {
		if v, ok := kv.m[ns][string(k)]; ok {
			clear(v)
			delete(kv.m[ns], string(k))
		}
	}
	kv.dirty.Store(true)
}

// List returns the keys of ns that start with prefix and sort after after,
// in ascending order, at most limit (0: all).
func (kv *MessagingKV) List(ns string, prefix, after []byte, limit int) [][]byte {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	var keys []string
	for k := range kv.m[ns] {
		if strings.HasPrefix(k, string(prefix)) && k > string(after) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = []byte(k)
	}
	return out
}

func (kv *MessagingKV) export() []stateKV {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	var out []stateKV
	for ns, space := range kv.m {
		for k, v := range space {
			out = append(out, stateKV{NS: ns, Key: []byte(k), Value: v})
		}
	}
	slices.SortFunc(out, func(a, b stateKV) int {
		if c := strings.Compare(a.NS, b.NS); c != 0 {
			return c
		}
		return bytes.Compare(a.Key, b.Key)
	})
	return out
}

// stateKV is one entry of the messaging layer's state.
type stateKV struct {
	NS    string `json:"ns"`
	Key   []byte `json:"key"`
	Value []byte `json:"value"`
}

// MessagingKV returns the key-value space of the client's state that its
// messaging layer keeps its state in (Config.Messaging is handed it).
func (c *Client) MessagingKV() *MessagingKV { return c.kv }

// sealE2E seals body for contact to through the messaging layer. It
// returns nil (and no error) when the message goes HPKE-only: the client
// has no messaging layer, the contact carries no card (a contact string of
// an older client, or one made with NoCard), or it is the client's own.
func (c *Client) sealE2E(ctx context.Context, to *Contact, body []byte) ([]byte, error) {
	if c.msg == nil || len(to.Card) == 0 || bytes.Equal(to.Key, c.msgPub.Bytes()) {
		// The last: this client's own forward contact (a note to self);
		// a ratchet session with oneself has no peer to heal with.
		return nil, nil
	}
	s, err := c.msg.StartSession(ctx, to.Card)
	if err != nil {
		return nil, fmt.Errorf("%w: the contact's card: %w", ErrContact, err)
	}
	ct, err := c.msg.Encrypt(ctx, s, body)
	if err != nil {
		return nil, fmt.Errorf("client: sealing the message: %w", err)
	}
	return ct, nil
}

// openE2E opens a reassembled message sealed by the messaging layer
// (under c.mu; the ratchet state it changes is saved with the message).
func (c *Client) openE2E(m *Message) error {
	if c.msg == nil {
		return ErrNoMessaging
	}
	sender, body, err := c.msg.Decrypt(context.Background(), m.Body)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoMessaging, err)
	}
	clear(m.Body)
	m.Body, m.Sender = body, sender
	return nil
}
