// Package msgratchet is Sotto's end-to-end messaging layer (the Messaging
// plugin kind): an X3DH-style start from a contact card (identity key,
// signed prekey, one-time prekeys), then the Double Ratchet (Signal's
// specification: X25519, HKDF-SHA256 root chain, HMAC-SHA256 sending and
// receiving chains, AES-256-GCM), with every state change written to the
// Storage KV namespace it is handed before the call returns, so sessions
// survive restarts and a message key is never used twice.
//
// docs/SPEC.md, "Messaging layer", is the specification: the KDF chains,
// the card and message formats, the bounds (MaxSkip, MaxSkipped), prekey
// rotation, and what forward secrecy and post-compromise security hold in
// each contact mode. Headers are not encrypted by this layer: the client
// seals every fragment to the recipient's HPKE key as well, so that the
// recipient's provider does not see them.
package msgratchet

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
	"slices"
	"sync"
	"time"

	"github.com/sottonet/sotto/interfaces"
)

// Bounds on what a session keeps for messages that have not arrived yet
// (reordered or lost in the mixnet).
const (
	// MaxSkip is the most message keys one incoming message may make the
	// receiver derive ahead (in its chain, plus the end of the previous
	// chain): a message further ahead is refused (ErrDecrypt) and changes
	// nothing.
	MaxSkip = 1000
	// MaxSkipped is the most skipped message keys a session stores; past
	// it the oldest are dropped (their messages then give ErrReplay).
	MaxSkipped = 2000
)

// Prekey policy (the defaults of Options).
const (
	// DefaultCardOPKs is how many one-time prekeys a contact card carries.
	DefaultCardOPKs = 4
	// DefaultSPKRotation is how often the signed prekey is replaced.
	DefaultSPKRotation = 7 * 24 * time.Hour
	// DefaultPrekeyKeep is how long a replaced signed prekey, and a used
	// one-time prekey, still open first messages (cards handed out
	// earlier, several senders of one card) before they are deleted.
	DefaultPrekeyKeep = 30 * 24 * time.Hour
)

const (
	maxPastChains   = 64
	maxPeerSessions = 4
	maxSeen         = 10000
	cardVersion     = 2
	headerVersion   = 2
	maxCardOPKs     = 16
	// card: version | sign(32) | dh(32) | spk id(4) | spk(32) | n(1) | n × (id(4) | opk(32)) | sig(64)
	cardFixed = 1 + 32 + 32 + 4 + 32 + 1 + 64
	// init: dh identity(32) | identity signature(64) | ephemeral(32) | spk id(4) | opk id(4)
	initLen = 32 + 64 + 32 + 4 + 4
	// header: version | flags | sender(32) | [init] | ratchet key(32) | PN(4) | N(4)
	headerFixed = 2 + 32 + 32 + 8
	tagLen      = 16
)

var x25519 = ecdh.X25519()

// Domain separation strings (docs/SPEC.md, "Messaging layer").
const (
	labelCard  = "sotto ratchet card v2\x00"
	labelID    = "sotto ratchet identity v2\x00"
	labelX3DH  = "sotto ratchet x3dh v2"
	labelRoot  = "sotto ratchet root v2"
	msgKeyByte = 0x01
	chainByte  = 0x02
)

// Options tune a Ratchet; the zero value takes the defaults.
type Options struct {
	// Now is the clock prekey rotation runs on; nil: time.Now.
	Now func() time.Time
	// CardOPKs is how many one-time prekeys a card carries (0: default,
	// at most 16).
	CardOPKs    int
	SPKRotation time.Duration
	PrekeyKeep  time.Duration
}

// Ratchet implements interfaces.Messaging for one local user.
type Ratchet struct {
	kv   interfaces.KV
	ns   string
	opts Options

	mu  sync.Mutex
	id  identity
	pk  prekeys
	cur map[interfaces.SessionID]*session
}

var _ interfaces.Messaging = (*Ratchet)(nil)

type identity struct {
	Sign ed25519.PrivateKey
	DH   []byte // X25519 private
}

type spk struct {
	ID      uint32
	Priv    []byte
	Created time.Time
	Retired time.Time // zero while current
}

type opk struct {
	ID   uint32
	Priv []byte
	Used time.Time // zero while unused
}

type seen struct {
	H       [16]byte // SHA-256 of the ephemeral key, truncated
	Expires time.Time
}

// prekeys is the responder's side of the start: the current and recent
// signed prekeys, the one-time prekey pool, and the ephemeral keys of
// first messages already taken (their replay check).
type prekeys struct {
	NextID uint32
	SPKs   []spk // current last
	OPKs   []opk
	Seen   []seen
}

type skippedKey struct {
	DH [32]byte
	N  uint32
}

type skipped struct {
	K  skippedKey
	MK []byte
}

type session struct {
	ID         interfaces.SessionID
	PeerSign   []byte
	PeerDH     []byte
	RK         []byte
	DHs        []byte // our ratchet private key
	DHsPub     []byte // its public key (nil in older states: derived)
	DHr        []byte // their ratchet public key
	CKs, CKr   []byte
	Ns, Nr, PN uint32
	Skipped    []skipped // oldest first, at most MaxSkipped
	PastDHr    [][]byte  // the peer's earlier ratchet keys: their chains are closed
	Init       []byte    // initiator: X3DH data sent until the peer answers
	PeerEK     []byte    // responder: the ephemeral key that created the session
	AD         []byte
}

// Open loads (or creates) the user whose state lives in namespace ns of kv,
// with the default Options.
func Open(ctx context.Context, kv interfaces.KV, ns string) (*Ratchet, error) {
	return OpenWith(ctx, kv, ns, Options{})
}

// OpenWith is Open with Options.
func OpenWith(ctx context.Context, kv interfaces.KV, ns string, opts Options) (*Ratchet, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CardOPKs == 0 {
		opts.CardOPKs = DefaultCardOPKs
	}
	if opts.CardOPKs < 0 || opts.CardOPKs > maxCardOPKs {
		return nil, fmt.Errorf("%w: %d one-time prekeys per card, want 1..%d", interfaces.ErrInvalidArgument, opts.CardOPKs, maxCardOPKs)
	}
	if opts.SPKRotation <= 0 {
		opts.SPKRotation = DefaultSPKRotation
	}
	if opts.PrekeyKeep <= 0 {
		opts.PrekeyKeep = DefaultPrekeyKeep
	}
	r := &Ratchet{kv: kv, ns: ns, opts: opts, cur: map[interfaces.SessionID]*session{}}
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
		dhk, err := x25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		id = identity{Sign: sign, DH: dhk.Bytes()}
		if err := r.store(ctx, "identity", id, true); err != nil {
			return nil, err
		}
		// Two concurrent first opens: keep whichever identity won.
		if _, err := r.load(ctx, "identity", &id); err != nil {
			return nil, err
		}
	}
	if len(id.Sign) != ed25519.PrivateKeySize || len(id.DH) != 32 {
		return nil, fmt.Errorf("ratchet: corrupt identity in namespace %s", ns)
	}
	r.id = id
	if _, err := r.load(ctx, "prekeys", &r.pk); err != nil {
		return nil, err
	}
	if pk, changed := r.maintain(r.pk); changed {
		if err := r.store(ctx, "prekeys", pk, false); err != nil {
			return nil, err
		}
		r.pk = pk
	}
	return r, nil
}

func (r *Ratchet) signPub() []byte { return r.id.Sign.Public().(ed25519.PublicKey) }

func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	err := gob.NewEncoder(&buf).Encode(v)
	return buf.Bytes(), err
}

func (r *Ratchet) load(ctx context.Context, key string, v any) (bool, error) {
	resp, err := r.kv.KVGet(ctx, &interfaces.KVGetRequest{Namespace: r.ns, Keys: [][]byte{[]byte(key)}})
	if err != nil {
		return false, fmt.Errorf("ratchet: load %s: %w", key, err)
	}
	if len(resp.Found) != 1 || !resp.Found[0] {
		return false, nil
	}
	if err := gob.NewDecoder(bytes.NewReader(resp.Values[0])).Decode(v); err != nil {
		return false, fmt.Errorf("ratchet: corrupt state %s: %v", key, err)
	}
	return true, nil
}

func (r *Ratchet) store(ctx context.Context, key string, v any, ifAbsent bool) error {
	b, err := encode(v)
	if err != nil {
		return err
	}
	_, err = r.kv.KVPut(ctx, &interfaces.KVPutRequest{Namespace: r.ns, Entries: []interfaces.KVEntry{{Key: []byte(key), Value: b, IfAbsent: ifAbsent}}})
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
	r.cur[id] = &s
	return &s, nil
}

// peerSessions returns the sessions with a peer, the active one first.
func (r *Ratchet) peerSessions(ctx context.Context, sign []byte) ([]interfaces.SessionID, error) {
	var ids []interfaces.SessionID
	if _, err := r.load(ctx, peerKey(sign), &ids); err != nil {
		return nil, err
	}
	return ids, nil
}

// commit writes a session (made active for its peer) and, when pk is not
// nil, the prekeys, in one durable commit; only then does the in-memory
// copy change.
func (r *Ratchet) commit(ctx context.Context, s *session, pk *prekeys) error {
	ids, err := r.peerSessions(ctx, s.PeerSign)
	if err != nil {
		return err
	}
	var dropped []interfaces.SessionID
	ids = slices.DeleteFunc(ids, func(id interfaces.SessionID) bool { return id == s.ID })
	ids = append([]interfaces.SessionID{s.ID}, ids...)
	if len(ids) > maxPeerSessions {
		dropped = ids[maxPeerSessions:]
		ids = ids[:maxPeerSessions]
	}
	st, err := encode(s)
	if err != nil {
		return err
	}
	idx, err := encode(ids)
	if err != nil {
		return err
	}
	entries := []interfaces.KVEntry{
		{Key: []byte(sessionKey(s.ID)), Value: st},
		{Key: []byte(peerKey(s.PeerSign)), Value: idx},
	}
	if pk != nil {
		b, err := encode(*pk)
		if err != nil {
			return err
		}
		entries = append(entries, interfaces.KVEntry{Key: []byte("prekeys"), Value: b})
	}
	if _, err := r.kv.KVPut(ctx, &interfaces.KVPutRequest{Namespace: r.ns, Entries: entries}); err != nil {
		return fmt.Errorf("ratchet: save session: %w", err)
	}
	r.cur[s.ID] = s
	if pk != nil {
		r.pk = *pk
	}
	for _, id := range dropped {
		// The peer's oldest session: its keys go (best effort; an orphan
		// record is unreachable and holds no key the peer still uses).
		_, _ = r.kv.KVDelete(ctx, &interfaces.KVDeleteRequest{Namespace: r.ns, Keys: [][]byte{[]byte(sessionKey(id))}})
		if old, ok := r.cur[id]; ok {
			old.wipe()
			delete(r.cur, id)
		}
	}
	return nil
}

func pub(priv []byte) []byte {
	k, err := x25519.NewPrivateKey(priv)
	if err != nil {
		panic("ratchet: stored X25519 key is invalid") // we wrote it ourselves
	}
	return k.PublicKey().Bytes()
}

func dh(priv, peer []byte) ([]byte, error) {
	k, err := x25519.NewPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	p, err := x25519.NewPublicKey(peer)
	if err != nil {
		return nil, fmt.Errorf("%w: bad X25519 public key", interfaces.ErrInvalidArgument)
	}
	out, err := k.ECDH(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", interfaces.ErrInvalidArgument, err)
	}
	return out, nil
}

func newKey() []byte {
	k, err := x25519.GenerateKey(rand.Reader)
	if err != nil {
		panic("ratchet: crypto/rand failed: " + err.Error())
	}
	return k.Bytes()
}

// maintain rotates the signed prekey, deletes prekeys past their keep
// time, tops up the one-time prekeys and forgets expired replay records.
// It works on a copy and reports whether anything changed.
func (r *Ratchet) maintain(pk prekeys) (prekeys, bool) {
	now := r.opts.Now()
	changed := false
	pk.SPKs = slices.Clone(pk.SPKs)
	pk.OPKs = slices.Clone(pk.OPKs)
	next := func() uint32 {
		pk.NextID++
		return pk.NextID
	}
	if n := len(pk.SPKs); n == 0 || now.Sub(pk.SPKs[n-1].Created) >= r.opts.SPKRotation {
		if n > 0 {
			pk.SPKs[n-1].Retired = now
		}
		pk.SPKs = append(pk.SPKs, spk{ID: next(), Priv: newKey(), Created: now})
		changed = true
	}
	pk.SPKs = slices.DeleteFunc(pk.SPKs, func(s spk) bool {
		gone := !s.Retired.IsZero() && now.Sub(s.Retired) >= r.opts.PrekeyKeep
		if gone {
			clear(s.Priv)
			changed = true
		}
		return gone
	})
	pk.OPKs = slices.DeleteFunc(pk.OPKs, func(o opk) bool {
		gone := !o.Used.IsZero() && now.Sub(o.Used) >= r.opts.PrekeyKeep
		if gone {
			clear(o.Priv)
			changed = true
		}
		return gone
	})
	unused := 0
	for _, o := range pk.OPKs {
		if o.Used.IsZero() {
			unused++
		}
	}
	for ; unused < r.opts.CardOPKs; unused++ {
		pk.OPKs = append(pk.OPKs, opk{ID: next(), Priv: newKey()})
		changed = true
	}
	n := len(pk.Seen)
	pk.Seen = slices.DeleteFunc(slices.Clone(pk.Seen), func(s seen) bool { return now.After(s.Expires) })
	changed = changed || len(pk.Seen) != n
	return pk, changed
}

// ContactCard returns the current card (docs/SPEC.md, "Messaging layer"),
// rotating the signed prekey and replenishing one-time prekeys when due.
func (r *Ratchet) ContactCard(ctx context.Context, _ *interfaces.ContactCardRequest) (*interfaces.ContactCardResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pk, changed := r.maintain(r.pk); changed {
		if err := r.store(ctx, "prekeys", pk, false); err != nil {
			return nil, err
		}
		r.pk = pk
	}
	cur := r.pk.SPKs[len(r.pk.SPKs)-1]
	c := []byte{cardVersion}
	c = append(c, r.signPub()...)
	c = append(c, pub(r.id.DH)...)
	c = binary.BigEndian.AppendUint32(c, cur.ID)
	c = append(c, pub(cur.Priv)...)
	var opks []opk
	for i := len(r.pk.OPKs) - 1; i >= 0 && len(opks) < r.opts.CardOPKs; i-- {
		if r.pk.OPKs[i].Used.IsZero() {
			opks = append(opks, r.pk.OPKs[i])
		}
	}
	c = append(c, byte(len(opks)))
	for _, o := range opks {
		c = binary.BigEndian.AppendUint32(c, o.ID)
		c = append(c, pub(o.Priv)...)
	}
	c = append(c, ed25519.Sign(r.id.Sign, append([]byte(labelCard), c...))...)
	return &interfaces.ContactCardResponse{Card: c, Identity: bytes.Clone(r.signPub())}, nil
}

type cardOPK struct {
	id  uint32
	key []byte
}

type card struct {
	sign, dh []byte
	spkID    uint32
	spk      []byte
	opks     []cardOPK
}

// parseCard decodes and verifies a contact card. It never panics.
func parseCard(b []byte) (card, error) {
	bad := func(why string) (card, error) {
		return card{}, fmt.Errorf("%w: contact card: %s", interfaces.ErrInvalidArgument, why)
	}
	if len(b) < cardFixed || len(b) > interfaces.MaxContactCardLen || b[0] != cardVersion {
		return bad(fmt.Sprintf("%d bytes, version %d", len(b), firstByte(b)))
	}
	c := card{sign: b[1:33], dh: b[33:65], spkID: binary.BigEndian.Uint32(b[65:69]), spk: b[69:101]}
	n := int(b[101])
	if n > maxCardOPKs || len(b) != cardFixed+n*36 {
		return bad(fmt.Sprintf("%d one-time prekeys in %d bytes", n, len(b)))
	}
	for i := range n {
		o := b[102+i*36:]
		c.opks = append(c.opks, cardOPK{id: binary.BigEndian.Uint32(o), key: o[4:36]})
	}
	body, sig := b[:len(b)-64], b[len(b)-64:]
	if !ed25519.Verify(c.sign, append([]byte(labelCard), body...), sig) {
		return bad("signature does not verify")
	}
	return c, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// kdfRK is the root chain: HKDF-SHA256 with the root key as salt.
func kdfRK(rk, dhOut []byte) (newRK, ck []byte) {
	out, _ := hkdf.Key(sha256.New, dhOut, rk, labelRoot, 64)
	return out[:32], out[32:]
}

// kdfCK is a sending or receiving chain step: HMAC-SHA256 keyed by the
// chain key, of 0x01 (message key) and 0x02 (next chain key).
func kdfCK(ck []byte) (next, mk []byte) {
	m := hmac.New(sha256.New, ck)
	m.Write([]byte{msgKeyByte})
	mk = m.Sum(nil)
	m = hmac.New(sha256.New, ck)
	m.Write([]byte{chainByte})
	return m.Sum(nil), mk
}

// x3dh derives the start's secret from the DH outputs (F || DH1 || DH2 ||
// DH3 [|| DH4], F = 32 bytes 0xFF as in X3DH).
func x3dh(parts ...[]byte) []byte {
	ikm := bytes.Repeat([]byte{0xff}, 32)
	for _, p := range parts {
		ikm = append(ikm, p...)
	}
	sk, _ := hkdf.Key(sha256.New, ikm, make([]byte, 32), labelX3DH, 32)
	clear(ikm)
	return sk
}

// StartSession runs the initiator's side of the X3DH-style start. Without
// Replace, an existing session with the card's owner (started by either
// side) is returned.
func (r *Ratchet) StartSession(ctx context.Context, req *interfaces.StartSessionRequest) (*interfaces.StartSessionResponse, error) {
	c, err := parseCard(req.PeerCard)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if bytes.Equal(c.sign, r.signPub()) {
		return nil, fmt.Errorf("%w: a session with oneself", interfaces.ErrInvalidArgument)
	}
	if !req.Replace {
		ids, err := r.peerSessions(ctx, c.sign)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if _, err := r.getSession(ctx, id); err == nil {
				return &interfaces.StartSessionResponse{Session: id, Existing: true}, nil
			}
		}
	}
	ek := newKey()
	defer clear(ek)
	dh1, err := dh(r.id.DH, c.spk)
	if err != nil {
		return nil, err
	}
	dh2, err := dh(ek, c.dh)
	if err != nil {
		return nil, err
	}
	dh3, err := dh(ek, c.spk)
	if err != nil {
		return nil, err
	}
	parts := [][]byte{dh1, dh2, dh3}
	var opkID uint32
	if len(c.opks) > 0 {
		var i [1]byte
		rand.Read(i[:])
		o := c.opks[int(i[0])%len(c.opks)]
		dh4, err := dh(ek, o.key)
		if err != nil {
			return nil, err
		}
		parts, opkID = append(parts, dh4), o.id
	}
	sk := x3dh(parts...)
	for _, p := range parts {
		clear(p)
	}
	ratchet := newKey()
	out, err := dh(ratchet, c.spk)
	if err != nil {
		return nil, err
	}
	rk, cks := kdfRK(sk, out)
	clear(sk)
	s := &session{
		PeerSign: bytes.Clone(c.sign), PeerDH: bytes.Clone(c.dh),
		RK: rk, DHs: ratchet, DHsPub: pub(ratchet), DHr: bytes.Clone(c.spk), CKs: cks,
		AD: append(bytes.Clone(r.signPub()), c.sign...),
	}
	init := append(pub(r.id.DH), ed25519.Sign(r.id.Sign, append([]byte(labelID), pub(r.id.DH)...))...)
	init = append(init, pub(ek)...)
	init = binary.BigEndian.AppendUint32(init, c.spkID)
	s.Init = binary.BigEndian.AppendUint32(init, opkID)
	rand.Read(s.ID[:])
	if err := r.commit(ctx, s, nil); err != nil {
		return nil, err
	}
	return &interfaces.StartSessionResponse{Session: s.ID}, nil
}

func encodeHeader(sender, init, dhPub []byte, pn, n uint32) []byte {
	h := []byte{headerVersion, 0}
	h = append(h, sender...)
	if init != nil {
		h[1] = 1
		h = append(h, init...)
	}
	h = append(h, dhPub...)
	h = binary.BigEndian.AppendUint32(h, pn)
	return binary.BigEndian.AppendUint32(h, n)
}

type header struct {
	sender []byte
	init   []byte // first messages: dh identity | signature | ephemeral | spk id | opk id
	dh     [32]byte
	pn, n  uint32
	raw    []byte
}

func (h header) peerDH() []byte { return h.init[:32] }
func (h header) idSig() []byte  { return h.init[32:96] }
func (h header) ek() []byte     { return h.init[96:128] }
func (h header) spkID() uint32  { return binary.BigEndian.Uint32(h.init[128:]) }
func (h header) opkID() uint32  { return binary.BigEndian.Uint32(h.init[132:]) }

// parseHeader splits a ciphertext into its header and sealed body. It
// never panics.
func parseHeader(b []byte) (header, []byte, error) {
	bad := fmt.Errorf("%w: malformed ciphertext", interfaces.ErrDecrypt)
	if len(b) < 2 || b[0] != headerVersion || b[1] > 1 {
		return header{}, nil, bad
	}
	n := headerFixed
	if b[1] == 1 {
		n += initLen
	}
	if len(b) < n+tagLen {
		return header{}, nil, bad
	}
	h := header{sender: b[2:34]}
	off := 34
	if b[1] == 1 {
		h.init = b[34 : 34+initLen]
		off += initLen
	}
	copy(h.dh[:], b[off:off+32])
	h.pn = binary.BigEndian.Uint32(b[off+32:])
	h.n = binary.BigEndian.Uint32(b[off+36:])
	h.raw = b[:n]
	return h, b[n:], nil
}

// seal and open: AES-256-GCM under a message key used for one message
// only, so the nonce is fixed (zero); the associated data is both
// identities and the header.
func seal(mk, ad, body []byte) []byte {
	block, _ := aes.NewCipher(mk)
	aead, _ := cipher.NewGCM(block)
	return aead.Seal(nil, make([]byte, aead.NonceSize()), body, ad)
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
	c.Skipped = slices.Clone(s.Skipped)
	c.PastDHr = slices.Clone(s.PastDHr)
	return &c
}

// wipe clears the session's secrets (a session ended or dropped).
func (s *session) wipe() {
	for _, b := range [][]byte{s.RK, s.DHs, s.CKs, s.CKr} {
		clear(b)
	}
	for _, k := range s.Skipped {
		clear(k.MK)
	}
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
	defer clear(mk)
	if s.DHsPub == nil {
		s.DHsPub = pub(s.DHs)
	}
	h := encodeHeader(r.signPub(), s.Init, s.DHsPub, s.PN, s.Ns)
	s.Ns++
	// The advanced chain is durable before the ciphertext exists: a
	// restart never seals a second message under this key.
	if err := r.commit(ctx, s, nil); err != nil {
		return nil, err
	}
	ct := seal(mk, append(bytes.Clone(s.AD), h...), req.Body)
	return &interfaces.EncryptResponse{Ciphertext: append(h, ct...)}, nil
}

// Decrypt opens a ciphertext, creating the responder's session on a first
// message. Nothing changes unless it opens.
func (r *Ratchet) Decrypt(ctx context.Context, req *interfaces.DecryptRequest) (*interfaces.DecryptResponse, error) {
	h, ct, err := parseHeader(req.Ciphertext)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ids, err := r.peerSessions(ctx, h.sender)
	if err != nil {
		return nil, err
	}
	var sessions []*session
	for _, id := range ids {
		if s, err := r.getSession(ctx, id); err == nil {
			sessions = append(sessions, s)
		} else if !errors.Is(err, interfaces.ErrNotFound) {
			return nil, err
		}
	}
	if h.init != nil {
		for _, old := range sessions {
			if bytes.Equal(old.PeerEK, h.ek()) {
				// A later first message of a start already taken (the
				// initiator repeats the start until it hears back).
				return r.open(ctx, old.clone(), h, ct, nil, false)
			}
		}
		pk, _ := r.maintain(r.pk)
		hk := ekHash(h.ek())
		for _, sn := range pk.Seen {
			if sn.H == hk {
				return nil, fmt.Errorf("%w: a first message whose session is gone", interfaces.ErrReplay)
			}
		}
		s, err := r.respond(h, &pk)
		if err != nil {
			return nil, err
		}
		return r.open(ctx, s, h, ct, &pk, true)
	}
	if len(sessions) == 0 {
		return nil, fmt.Errorf("%w: no session with this sender", interfaces.ErrDecrypt)
	}
	// The active session first; an older one (a start both sides made at
	// once, or a replaced one) may still carry the peer's messages.
	var first error
	for i, old := range sessions {
		resp, err := r.open(ctx, old.clone(), h, ct, nil, false)
		if err == nil {
			return resp, nil
		}
		if i == 0 {
			first = err
		}
	}
	return nil, first
}

func ekHash(ek []byte) [16]byte {
	s := sha256.Sum256(append([]byte("sotto ratchet ek\x00"), ek...))
	return [16]byte(s[:16])
}

// open decrypts with s (a copy) and commits s (and pk) if it opens.
func (r *Ratchet) open(ctx context.Context, s *session, h header, ct []byte, pk *prekeys, created bool) (*interfaces.DecryptResponse, error) {
	body, err := s.decrypt(h, ct)
	if err != nil {
		return nil, err
	}
	if err := r.commit(ctx, s, pk); err != nil {
		return nil, err
	}
	return &interfaces.DecryptResponse{Session: s.ID, PeerIdentity: bytes.Clone(s.PeerSign), Body: body, Created: created}, nil
}

// respond runs the responder's side of the start from a first message's
// header, marking the one-time prekey it used and its ephemeral key in pk
// (committed only if the message opens).
func (r *Ratchet) respond(h header, pk *prekeys) (*session, error) {
	if !ed25519.Verify(h.sender, append([]byte(labelID), h.peerDH()...), h.idSig()) {
		return nil, fmt.Errorf("%w: the sender's identity keys do not match", interfaces.ErrDecrypt)
	}
	i := slices.IndexFunc(pk.SPKs, func(s spk) bool { return s.ID == h.spkID() })
	if i < 0 {
		return nil, fmt.Errorf("%w: signed prekey %d is unknown or expired", interfaces.ErrDecrypt, h.spkID())
	}
	spkPriv := pk.SPKs[i].Priv
	fail := func(err error) (*session, error) { return nil, fmt.Errorf("%w: %w", interfaces.ErrDecrypt, err) }
	dh1, err := dh(spkPriv, h.peerDH())
	if err != nil {
		return fail(err)
	}
	dh2, err := dh(r.id.DH, h.ek())
	if err != nil {
		return fail(err)
	}
	dh3, err := dh(spkPriv, h.ek())
	if err != nil {
		return fail(err)
	}
	parts := [][]byte{dh1, dh2, dh3}
	if id := h.opkID(); id != 0 {
		j := slices.IndexFunc(pk.OPKs, func(o opk) bool { return o.ID == id })
		if j < 0 {
			return nil, fmt.Errorf("%w: one-time prekey %d is unknown or expired", interfaces.ErrDecrypt, id)
		}
		dh4, err := dh(pk.OPKs[j].Priv, h.ek())
		if err != nil {
			return fail(err)
		}
		parts = append(parts, dh4)
		if pk.OPKs[j].Used.IsZero() {
			pk.OPKs[j].Used = r.opts.Now()
		}
	}
	sk := x3dh(parts...)
	for _, p := range parts {
		clear(p)
	}
	pk.Seen = append(pk.Seen, seen{H: ekHash(h.ek()), Expires: r.opts.Now().Add(r.opts.SPKRotation + r.opts.PrekeyKeep)})
	if len(pk.Seen) > maxSeen {
		pk.Seen = pk.Seen[len(pk.Seen)-maxSeen:]
	}
	// Top up the one-time prekeys the card hands out.
	*pk, _ = r.maintain(*pk)
	s := &session{
		PeerSign: bytes.Clone(h.sender), PeerDH: bytes.Clone(h.peerDH()), PeerEK: bytes.Clone(h.ek()),
		RK: sk, DHs: bytes.Clone(spkPriv), DHsPub: pub(spkPriv),
		AD: append(bytes.Clone(h.sender), r.signPub()...),
	}
	rand.Read(s.ID[:])
	return s, nil
}

func (s *session) findSkipped(k skippedKey) int {
	return slices.IndexFunc(s.Skipped, func(e skipped) bool { return e.K == k })
}

func (s *session) decrypt(h header, ct []byte) ([]byte, error) {
	ad := append(bytes.Clone(s.AD), h.raw...)
	if i := s.findSkipped(skippedKey{h.dh, h.n}); i >= 0 {
		body, err := open(s.Skipped[i].MK, ad, ct)
		if err != nil {
			return nil, err
		}
		clear(s.Skipped[i].MK)
		s.Skipped = slices.Delete(s.Skipped, i, i+1)
		return body, nil
	}
	if !bytes.Equal(h.dh[:], s.DHr) {
		for _, past := range s.PastDHr {
			if bytes.Equal(past, h.dh[:]) {
				return nil, fmt.Errorf("%w: message of a closed chain was already opened (or its key dropped)", interfaces.ErrReplay)
			}
		}
		if s.DHr != nil {
			s.PastDHr = append(s.PastDHr, s.DHr)
			if len(s.PastDHr) > maxPastChains {
				s.PastDHr = s.PastDHr[len(s.PastDHr)-maxPastChains:]
			}
		}
		if s.CKr != nil {
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
		s.DHs = newKey()
		s.DHsPub = pub(s.DHs)
		out, _ = dh(s.DHs, s.DHr)
		s.RK, s.CKs = kdfRK(s.RK, out)
	} else if h.n < s.Nr {
		return nil, fmt.Errorf("%w: message %d of this chain was already opened (or its key dropped)", interfaces.ErrReplay, h.n)
	}
	if err := s.skip(h.n); err != nil {
		return nil, err
	}
	var mk []byte
	s.CKr, mk = kdfCK(s.CKr)
	defer clear(mk)
	s.Nr++
	body, err := open(mk, ad, ct)
	if err != nil {
		return nil, err
	}
	s.Init = nil // the peer answered or we received: no more X3DH data
	return body, nil
}

// skip derives and keeps the keys of the current receiving chain's
// messages up to (not including) until: at most MaxSkip at once, and at
// most MaxSkipped kept, the oldest dropped first.
func (s *session) skip(until uint32) error {
	if s.CKr == nil || until <= s.Nr {
		return nil
	}
	if until-s.Nr > MaxSkip {
		return fmt.Errorf("%w: %d skipped messages, at most %d", interfaces.ErrDecrypt, until-s.Nr, MaxSkip)
	}
	var dhr [32]byte
	copy(dhr[:], s.DHr)
	for s.Nr < until {
		var mk []byte
		s.CKr, mk = kdfCK(s.CKr)
		s.Skipped = append(s.Skipped, skipped{K: skippedKey{dhr, s.Nr}, MK: mk})
		s.Nr++
	}
	if over := len(s.Skipped) - MaxSkipped; over > 0 {
		for _, k := range s.Skipped[:over] {
			clear(k.MK)
		}
		s.Skipped = slices.Delete(s.Skipped, 0, over)
	}
	return nil
}

// EndSession forgets a session and its keys. Idempotent.
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
	ids, err := r.peerSessions(ctx, s.PeerSign)
	if err != nil {
		return nil, err
	}
	ids = slices.DeleteFunc(ids, func(id interfaces.SessionID) bool { return id == s.ID })
	if len(ids) > 0 {
		idx, err := encode(ids)
		if err != nil {
			return nil, err
		}
		if _, err := r.kv.KVPut(ctx, &interfaces.KVPutRequest{Namespace: r.ns, Entries: []interfaces.KVEntry{{Key: []byte(peerKey(s.PeerSign)), Value: idx}}}); err != nil {
			return nil, err
		}
		if _, err := r.kv.KVDelete(ctx, &interfaces.KVDeleteRequest{Namespace: r.ns, Keys: [][]byte{[]byte(sessionKey(s.ID))}}); err != nil {
			return nil, err
		}
	} else {
		keys := [][]byte{[]byte(sessionKey(s.ID)), []byte(peerKey(s.PeerSign))}
		if _, err := r.kv.KVDelete(ctx, &interfaces.KVDeleteRequest{Namespace: r.ns, Keys: keys}); err != nil {
			return nil, err
		}
	}
	s.wipe()
	delete(r.cur, s.ID)
	return &interfaces.EndSessionResponse{}, nil
}
