// Package messagingratchet is the reference Messaging plugin: an X3DH-style
// start from a contact card, then the Double Ratchet (Signal's
// specification, X25519 + HKDF-SHA256 + HMAC-SHA256 chains + AES-256-GCM),
// with every state change written to a Storage KV namespace before the call
// returns, so sessions survive restarts and a message key is never reused.
//
// It is a small reference for the conformance suite (interfaces/messagingtest)
// and for plugin authors, not the production layer (plugins/msg-ratchet).
// Known simplifications: no one-time prekeys (a replayed first message is
// still refused by the receiver's replay check, but the initial secret has
// no one-time contribution); headers are not encrypted, so whoever stores a
// ciphertext (the recipient's provider) sees the sender's identity keys.
package messagingratchet

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"sync"

	"github.com/sottonet/sotto/interfaces"
)

// MaxSkip bounds the message keys kept for skipped (reordered or lost)
// messages per receiving chain.
const MaxSkip = 1000

const (
	maxPastChains = 64
	cardVersion   = 1
	headerVersion = 1
	cardLen       = 1 + 32 + 32 + 32 + 64
	initLen       = 32 + 32 + 32 // sender's signing key, DH identity, ephemeral
)

var x25519 = ecdh.X25519()

// Ratchet implements interfaces.Messaging for one local user.
type Ratchet struct {
	kv interfaces.KV
	ns string

	mu  sync.Mutex
	id  identity
	cur map[interfaces.SessionID]*session
}

var _ interfaces.Messaging = (*Ratchet)(nil)

type identity struct {
	Sign    ed25519.PrivateKey
	DH      []byte // X25519 private
	SPK     []byte // signed prekey, X25519 private
	SPKSig  []byte
	Created bool
}

type skippedKey struct {
	DH [32]byte
	N  uint32
}

type session struct {
	ID         interfaces.SessionID
	PeerSign   []byte
	PeerDH     []byte
	RK         []byte
	DHs        []byte // our ratchet private key
	DHr        []byte // their ratchet public key
	CKs, CKr   []byte
	Ns, Nr, PN uint32
	Skipped    map[skippedKey][]byte
	PastDHr    [][]byte // the peer's earlier ratchet keys: their chains are closed
	Init       []byte   // initiator: X3DH data sent until the peer answers
	PeerEK     []byte   // responder: the ephemeral key that created the session
	AD         []byte
}

// Open loads (or creates) the user whose state lives in namespace ns of kv.
func Open(ctx context.Context, kv interfaces.KV, ns string) (*Ratchet, error) {
	r := &Ratchet{kv: kv, ns: ns, cur: map[interfaces.SessionID]*session{}}
	var id identity
	found, err := r.load(ctx, "identity", &id)
	if err != nil {
		return nil, err
	}
	if !found {
		_, sign, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		dh, _ := x25519.GenerateKey(rand.Reader)
		spk, _ := x25519.GenerateKey(rand.Reader)
		id = identity{Sign: sign, DH: dh.Bytes(), SPK: spk.Bytes(), Created: true}
		id.SPKSig = ed25519.Sign(sign, append([]byte("sotto ratchet spk\x00"), spk.PublicKey().Bytes()...))
		if err := r.store(ctx, "identity", id, true); err != nil {
			return nil, err
		}
		// Two concurrent first opens: keep whichever identity won.
		if _, err := r.load(ctx, "identity", &id); err != nil {
			return nil, err
		}
	}
	r.id = id
	return r, nil
}

func (r *Ratchet) load(ctx context.Context, key string, v any) (bool, error) {
	resp, err := r.kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: r.ns, Keys: [][]byte{[]byte(key)}})
	if err != nil {
		return false, fmt.Errorf("ratchet: load %s: %w", key, err)
	}
	if !resp.Found[0] {
		return false, nil
	}
	if err := gob.NewDecoder(bytes.NewReader(resp.Values[0])).Decode(v); err != nil {
		return false, fmt.Errorf("ratchet: corrupt state %s: %v", key, err)
	}
	return true, nil
}

func (r *Ratchet) store(ctx context.Context, key string, v any, ifAbsent bool) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		return err
	}
	_, err := r.kv.KVPut(ctx, &interfaces.KVPutRequest{Namespace: r.ns, Entries: []interfaces.KVEntry{{Key: []byte(key), Value: buf.Bytes(), IfAbsent: ifAbsent}}})
	if err != nil {
		return fmt.Errorf("ratchet: store %s: %w", key, err)
	}
	return nil
}

func sessionKey(id interfaces.SessionID) string { return fmt.Sprintf("session/%x", id[:]) }
func peerKey(sign []byte) string                { return fmt.Sprintf("peer/%x", sign) }

func (r *Ratchet) getSession(ctx context.Context, id interfaces.SessionID) (*session, error) {
	if s, ok := r.cur[id]; ok {
		return s, nil
	}
	var s session
	found, err := r.load(ctx, sessionKey(id), &s)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: session %x", interfaces.ErrNotFound, id[:])
	}
	if s.Skipped == nil {
		s.Skipped = map[skippedKey][]byte{}
	}
	r.cur[id] = &s
	return &s, nil
}

func (r *Ratchet) sessionOfPeer(ctx context.Context, sign []byte) (*session, error) {
	var id interfaces.SessionID
	found, err := r.load(ctx, peerKey(sign), &id)
	if err != nil || !found {
		return nil, err
	}
	s, err := r.getSession(ctx, id)
	if errors.Is(err, interfaces.ErrNotFound) {
		return nil, nil
	}
	return s, err
}

// saveSession writes s and its index by peer identity in one durable commit; only then does the in-memory
// copy change.
func (r *Ratchet) saveSession(ctx context.Context, s *session) error {
	enc := func(v any) ([]byte, error) {
		var buf bytes.Buffer
		err := gob.NewEncoder(&buf).Encode(v)
		return buf.Bytes(), err
	}
	st, err := enc(s)
	if err != nil {
		return err
	}
	id, _ := enc(s.ID)
	entries := []interfaces.KVEntry{
		{Key: []byte(sessionKey(s.ID)), Value: st},
		{Key: []byte(peerKey(s.PeerSign)), Value: id},
	}
	if _, err := r.kv.KVPut(ctx, &interfaces.KVPutRequest{Namespace: r.ns, Entries: entries}); err != nil {
		return fmt.Errorf("ratchet: save session: %w", err)
	}
	r.cur[s.ID] = s
	return nil
}

func (r *Ratchet) publicCard() []byte {
	card := []byte{cardVersion}
	card = append(card, r.id.Sign.Public().(ed25519.PublicKey)...)
	card = append(card, mustPub(r.id.DH)...)
	card = append(card, mustPub(r.id.SPK)...)
	return append(card, r.id.SPKSig...)
}

func mustPub(priv []byte) []byte {
	k, err := x25519.NewPrivateKey(priv)
	if err != nil {
		panic("ratchet: stored X25519 key is invalid") // we wrote it ourselves
	}
	return k.PublicKey().Bytes()
}

func dh(priv, pub []byte) ([]byte, error) {
	k, err := x25519.NewPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	p, err := x25519.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: bad X25519 public key", interfaces.ErrInvalidArgument)
	}
	out, err := k.ECDH(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", interfaces.ErrInvalidArgument, err)
	}
	return out, nil
}

// ContactCard returns version || signing key || DH identity || signed prekey || signature.
func (r *Ratchet) ContactCard(context.Context, *interfaces.ContactCardRequest) (*interfaces.ContactCardResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &interfaces.ContactCardResponse{Card: r.publicCard(), Identity: bytes.Clone(r.id.Sign.Public().(ed25519.PublicKey))}, nil
}

type card struct{ sign, dh, spk []byte }

func parseCard(b []byte) (card, error) {
	if len(b) != cardLen || b[0] != cardVersion {
		return card{}, fmt.Errorf("%w: contact card of %d bytes (version %d)", interfaces.ErrInvalidArgument, len(b), firstByte(b))
	}
	c := card{sign: b[1:33], dh: b[33:65], spk: b[65:97]}
	if !ed25519.Verify(c.sign, append([]byte("sotto ratchet spk\x00"), c.spk...), b[97:]) {
		return card{}, fmt.Errorf("%w: contact card signature does not verify", interfaces.ErrInvalidArgument)
	}
	return c, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

func kdfRK(rk, dhOut []byte) (newRK, ck []byte) {
	out, _ := hkdf.Key(sha256.New, dhOut, rk, "sotto ratchet root", 64)
	return out[:32], out[32:]
}

func kdfCK(ck []byte) (next, mk []byte) {
	m := hmac.New(sha256.New, ck)
	m.Write([]byte{1})
	mk = m.Sum(nil)
	m = hmac.New(sha256.New, ck)
	m.Write([]byte{2})
	return m.Sum(nil), mk
}

// StartSession runs the initiator's side of the X3DH-style handshake.
func (r *Ratchet) StartSession(ctx context.Context, req *interfaces.StartSessionRequest) (*interfaces.StartSessionResponse, error) {
	c, err := parseCard(req.PeerCard)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !req.Replace {
		if s, err := r.sessionOfPeer(ctx, c.sign); err != nil {
			return nil, err
		} else if s != nil {
			return &interfaces.StartSessionResponse{Session: s.ID, Existing: true}, nil
		}
	}
	ek, _ := x25519.GenerateKey(rand.Reader)
	dh1, err := dh(r.id.DH, c.spk)
	if err != nil {
		return nil, err
	}
	dh2, err := dh(ek.Bytes(), c.dh)
	if err != nil {
		return nil, err
	}
	dh3, _ := dh(ek.Bytes(), c.spk)
	sk, _ := hkdf.Key(sha256.New, append(append(dh1, dh2...), dh3...), nil, "sotto ratchet x3dh", 32)
	ratchet, _ := x25519.GenerateKey(rand.Reader)
	out, _ := dh(ratchet.Bytes(), c.spk)
	rk, cks := kdfRK(sk, out)
	s := &session{
		PeerSign: bytes.Clone(c.sign), PeerDH: bytes.Clone(c.dh),
		RK: rk, DHs: ratchet.Bytes(), DHr: bytes.Clone(c.spk), CKs: cks,
		Skipped: map[skippedKey][]byte{},
		AD:      append(append([]byte{}, r.id.Sign.Public().(ed25519.PublicKey)...), c.sign...),
	}
	s.Init = append(append(append([]byte{}, r.id.Sign.Public().(ed25519.PublicKey)...), mustPub(r.id.DH)...), ek.PublicKey().Bytes()...)
	rand.Read(s.ID[:])
	if err := r.saveSession(ctx, s); err != nil {
		return nil, err
	}
	return &interfaces.StartSessionResponse{Session: s.ID}, nil
}

// header: version(1) | hasInit(1) | sender's signing key(32) |
// DH identity and ephemeral key (64, first messages only) | DH(32) | PN(4) | N(4)
func encodeHeader(sender, init, dhPub []byte, pn, n uint32) []byte {
	h := []byte{headerVersion, 0}
	h = append(h, sender...)
	if init != nil {
		h[1] = 1
		h = append(h, init[32:]...)
	}
	h = append(h, dhPub...)
	h = binary.BigEndian.AppendUint32(h, pn)
	return binary.BigEndian.AppendUint32(h, n)
}

type header struct {
	sender []byte
	init   []byte // sender || DH identity || ephemeral, on first messages
	dh     [32]byte
	pn, n  uint32
	raw    []byte
}

func parseHeader(b []byte) (header, []byte, error) {
	bad := fmt.Errorf("%w: malformed ciphertext", interfaces.ErrDecrypt)
	if len(b) < 2 || b[0] != headerVersion || b[1] > 1 {
		return header{}, nil, bad
	}
	n := 2 + 32 + 32 + 8
	if b[1] == 1 {
		n += initLen - 32
	}
	if len(b) < n {
		return header{}, nil, bad
	}
	h := header{sender: b[2:34]}
	off := 34
	if b[1] == 1 {
		h.init = b[2 : 2+initLen]
		off = 2 + initLen
	}
	copy(h.dh[:], b[off:off+32])
	h.pn = binary.BigEndian.Uint32(b[off+32:])
	h.n = binary.BigEndian.Uint32(b[off+36:])
	h.raw = b[:n]
	return h, b[n:], nil
}

func seal(mk, ad, body []byte) []byte {
	block, _ := aes.NewCipher(mk)
	aead, _ := cipher.NewGCM(block)
	return aead.Seal(nil, make([]byte, aead.NonceSize()), body, ad) // each mk seals one message
}

func open(mk, ad, ct []byte) ([]byte, error) {
	block, _ := aes.NewCipher(mk)
	aead, _ := cipher.NewGCM(block)
	body, err := aead.Open(nil, make([]byte, aead.NonceSize()), ct, ad)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", interfaces.ErrDecrypt)
	}
	return body, nil
}

func (s *session) clone() *session {
	c := *s
	c.Skipped = make(map[skippedKey][]byte, len(s.Skipped))
	for k, v := range s.Skipped {
		c.Skipped[k] = v
	}
	return &c
}

// Encrypt advances the sending chain and seals body.
func (r *Ratchet) Encrypt(ctx context.Context, req *interfaces.EncryptRequest) (*interfaces.EncryptResponse, error) {
	if len(req.Body) > interfaces.MaxMessageBodyLen {
		return nil, fmt.Errorf("%w: body of %d bytes", interfaces.ErrInvalidArgument, len(req.Body))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old, err := r.getSession(ctx, req.Session)
	if err != nil {
		return nil, err
	}
	s := old.clone()
	var mk []byte
	s.CKs, mk = kdfCK(s.CKs)
	h := encodeHeader(r.id.Sign.Public().(ed25519.PublicKey), s.Init, mustPub(s.DHs), s.PN, s.Ns)
	s.Ns++
	if err := r.saveSession(ctx, s); err != nil {
		return nil, err
	}
	ct := seal(mk, append(bytes.Clone(s.AD), h...), req.Body)
	return &interfaces.EncryptResponse{Ciphertext: append(h, ct...)}, nil
}

// Decrypt opens a ciphertext, creating the responder's session on a first message.
func (r *Ratchet) Decrypt(ctx context.Context, req *interfaces.DecryptRequest) (*interfaces.DecryptResponse, error) {
	h, ct, err := parseHeader(req.Ciphertext)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var s *session
	created := false
	if h.init != nil {
		peerSign := h.init[:32]
		existing, err := r.sessionOfPeer(ctx, peerSign)
		if err != nil {
			return nil, err
		}
		if existing != nil && bytes.Equal(existing.PeerEK, h.init[64:]) {
			s = existing.clone()
		} else {
			if s, err = r.respond(h.init); err != nil {
				return nil, err
			}
			created = true
		}
	} else {
		existing, err := r.sessionOfPeer(ctx, h.sender)
		if err != nil {
			return nil, err
		}
		if existing == nil {
			return nil, fmt.Errorf("%w: no session with this sender", interfaces.ErrDecrypt)
		}
		s = existing.clone()
	}
	body, err := s.decrypt(h, ct)
	if err != nil {
		return nil, err
	}
	if err := r.saveSession(ctx, s); err != nil {
		return nil, err
	}
	return &interfaces.DecryptResponse{Session: s.ID, PeerIdentity: bytes.Clone(s.PeerSign), Body: body, Created: created}, nil
}

func (r *Ratchet) respond(init []byte) (*session, error) {
	peerSign, peerDH, ek := init[:32], init[32:64], init[64:96]
	dh1, err := dh(r.id.SPK, peerDH)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", interfaces.ErrDecrypt, err)
	}
	dh2, err := dh(r.id.DH, ek)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", interfaces.ErrDecrypt, err)
	}
	dh3, _ := dh(r.id.SPK, ek)
	sk, _ := hkdf.Key(sha256.New, append(append(dh1, dh2...), dh3...), nil, "sotto ratchet x3dh", 32)
	s := &session{
		PeerSign: bytes.Clone(peerSign), PeerDH: bytes.Clone(peerDH), PeerEK: bytes.Clone(ek),
		RK: sk, DHs: bytes.Clone(r.id.SPK), Skipped: map[skippedKey][]byte{},
		AD: append(bytes.Clone(peerSign), r.id.Sign.Public().(ed25519.PublicKey)...),
	}
	rand.Read(s.ID[:])
	return s, nil
}

func (s *session) decrypt(h header, ct []byte) ([]byte, error) {
	ad := append(bytes.Clone(s.AD), h.raw...)
	if mk, ok := s.Skipped[skippedKey{h.dh, h.n}]; ok {
		body, err := open(mk, ad, ct)
		if err != nil {
			return nil, err
		}
		delete(s.Skipped, skippedKey{h.dh, h.n})
		return body, nil
	}
	if !bytes.Equal(h.dh[:], s.DHr) {
		for _, past := range s.PastDHr {
			if bytes.Equal(past, h.dh[:]) {
				return nil, fmt.Errorf("%w: message of a closed chain was already opened", interfaces.ErrReplay)
			}
		}
		if s.DHr != nil {
			s.PastDHr = append(s.PastDHr, s.DHr)
			if len(s.PastDHr) > maxPastChains {
				s.PastDHr = s.PastDHr[len(s.PastDHr)-maxPastChains:]
			}
		}
		if s.DHr != nil && s.CKr != nil {
			if err := s.skip(h.pn); err != nil {
				return nil, err
			}
		}
		out, err := dh(s.DHs, h.dh[:])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", interfaces.ErrDecrypt, err)
		}
		s.PN, s.Ns, s.Nr = s.Ns, 0, 0
		s.DHr = bytes.Clone(h.dh[:])
		s.RK, s.CKr = kdfRK(s.RK, out)
		next, _ := x25519.GenerateKey(rand.Reader)
		s.DHs = next.Bytes()
		out, _ = dh(s.DHs, s.DHr)
		s.RK, s.CKs = kdfRK(s.RK, out)
	} else if h.n < s.Nr {
		return nil, fmt.Errorf("%w: message %d of this chain was already opened", interfaces.ErrReplay, h.n)
	}
	if err := s.skip(h.n); err != nil {
		return nil, err
	}
	var mk []byte
	s.CKr, mk = kdfCK(s.CKr)
	s.Nr++
	body, err := open(mk, ad, ct)
	if err != nil {
		return nil, err
	}
	s.Init = nil // the peer answered or we received: no more X3DH data
	return body, nil
}

func (s *session) skip(until uint32) error {
	if s.CKr == nil {
		return nil
	}
	if until > s.Nr+MaxSkip || len(s.Skipped)+int(until-min(until, s.Nr)) > MaxSkip {
		return fmt.Errorf("%w: more than %d skipped messages", interfaces.ErrDecrypt, MaxSkip)
	}
	var dhr [32]byte
	copy(dhr[:], s.DHr)
	for s.Nr < until {
		var mk []byte
		s.CKr, mk = kdfCK(s.CKr)
		s.Skipped[skippedKey{dhr, s.Nr}] = mk
		s.Nr++
	}
	return nil
}

// EndSession forgets a session. Idempotent.
func (r *Ratchet) EndSession(ctx context.Context, req *interfaces.EndSessionRequest) (*interfaces.EndSessionResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.getSession(ctx, req.Session)
	if errors.Is(err, interfaces.ErrNotFound) {
		return &interfaces.EndSessionResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	keys := [][]byte{[]byte(sessionKey(s.ID)), []byte(peerKey(s.PeerSign))}
	if _, err := r.kv.KVDelete(ctx, &interfaces.KVDeleteRequest{Namespace: r.ns, Keys: keys}); err != nil {
		return nil, err
	}
	delete(r.cur, s.ID)
	return &interfaces.EndSessionResponse{}, nil
}
