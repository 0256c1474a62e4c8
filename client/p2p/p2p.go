//go:build !(js && wasm)

package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	yamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	tcp "github.com/libp2p/go-libp2p/p2p/transport/tcp"
	websocket "github.com/libp2p/go-libp2p/p2p/transport/websocket"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/core/clientproto"
)

// ErrClosed: the Conn was closed.
var ErrClosed = errors.New("p2p: connection closed")

// errBroken marks a failure of the stream itself (not a reply).
var errBroken = errors.New("p2p: stream to provider broken")

// UserAgent is what identify tells the provider.
const UserAgent = "sotto-client"

// Options configure Dial.
type Options struct {
	// Identity is the client's Ed25519 identity key; the provider serves
	// the client's own mailbox to whoever holds it. Required.
	Identity ed25519.PrivateKey
	// Provider is the provider's peer ID and addresses (see
	// ParseProviderAddr). Required.
	Provider peer.AddrInfo
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// WrapStream, if set, wraps every protocol stream the Conn opens
	// (a recorder of what crosses the link, in tests); nil costs nothing.
	WrapStream func(network.Stream) network.Stream
}

// Conn is a client's connection to its provider. It is safe for
// concurrent use.
type Conn struct {
	host   host.Host
	prov   peer.ID
	log    *slog.Logger
	nextID atomic.Uint32
	wrap   func(network.Stream) network.Stream

	mu      sync.Mutex
	closed  bool
	sess    *session
	opening chan struct{} // closed when the session being opened is ready
}

var (
	_ client.Provider   = (*Conn)(nil)
	_ client.Subscriber = (*Conn)(nil)
)

// ParseProviderAddr parses a provider's multiaddr, which must end in its
// peer ID: /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW...
func ParseProviderAddr(s string) (peer.AddrInfo, error) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("p2p: provider address %q: %w", s, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("p2p: provider address %q needs a /p2p/ peer ID: %w", s, err)
	}
	return *ai, nil
}

// ProviderID returns the Sotto node ID (Config.ProviderID: the Ed25519
// identity) behind a provider's libp2p peer ID, which embeds it.
func ProviderID(id peer.ID) ([32]byte, error) {
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return [32]byte{}, fmt.Errorf("p2p: provider peer ID %s: %w", id, err)
	}
	raw, err := pub.Raw()
	if err != nil || pub.Type() != crypto.Ed25519 || len(raw) != ed25519.PublicKeySize {
		return [32]byte{}, fmt.Errorf("p2p: provider peer ID %s is not an Ed25519 key, so it is not a Sotto node's identity", id)
	}
	return [32]byte(raw), nil
}

// Open builds a client of the provider at addr (a multiaddr ending in
// /p2p/PEER-ID; "" takes the address kept in cfg.Store): it fills in
// cfg.ProviderID from the peer ID, cfg.ProviderAddr, and cfg.Dial, which
// dials the provider under the client's identity (from cfg, or the
// Store). It does no network I/O: the client's Run dials, retrying with
// backoff, so a program can start while its provider is down.
func Open(addr string, cfg client.Config) (*client.Client, error) {
	if addr == "" && cfg.Store != nil {
		var err error
		if addr, err = client.StoredProviderAddr(cfg.Store); err != nil {
			return nil, err
		}
	}
	if addr == "" {
		return nil, errors.New("p2p: no provider address (a multiaddr ending in /p2p/PEER-ID), and none in the state")
	}
	ai, err := ParseProviderAddr(addr)
	if err != nil {
		return nil, err
	}
	if cfg.ProviderID, err = ProviderID(ai.ID); err != nil {
		return nil, err
	}
	cfg.ProviderAddr = addr
	log := cfg.Logger
	cfg.Dial = func(ctx context.Context, identity ed25519.PrivateKey) (client.Provider, error) {
		return Dial(ctx, Options{Identity: identity, Provider: ai, Logger: log})
	}
	return client.New(cfg)
}

// Connect is Open, then the client's Connect: it dials the provider,
// learns the network's epoch clock from its current document (unless cfg
// or the Store has it) and fetches the document to route with. It
// returns client.ErrWrongClock if the network runs on another clock than
// the client's, and the dial's error if the provider cannot be reached
// now (Open and Run ride that out). The caller runs the client (Run) and
// closes it (Close).
func Connect(ctx context.Context, addr string, cfg client.Config) (*client.Client, error) {
	c, err := Open(addr, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// Dial connects to the provider and opens the protocol stream.
func Dial(ctx context.Context, o Options) (*Conn, error) {
	if len(o.Identity) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("p2p: identity of %d bytes, want an Ed25519 private key", len(o.Identity))
	}
	if o.Provider.ID == "" || len(o.Provider.Addrs) == 0 {
		return nil, errors.New("p2p: provider needs a peer ID and an address")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(o.Identity)
	if err != nil {
		return nil, fmt.Errorf("p2p: identity: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.NoListenAddrs,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Transport(websocket.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent(UserAgent),
	)
	if err != nil {
		return nil, fmt.Errorf("p2p: starting libp2p host: %w", err)
	}
	c := &Conn{host: h, prov: o.Provider.ID, log: o.Logger.With("component", "p2p", "provider", o.Provider.ID), wrap: o.WrapStream}
	h.Peerstore().AddAddrs(o.Provider.ID, o.Provider.Addrs, peerstore.PermanentAddrTTL)
	if err := h.Connect(ctx, o.Provider); err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("p2p: connecting to provider %s: %w", o.Provider.ID, err)
	}
	if _, err := c.session(ctx); err != nil {
		_ = h.Close()
		return nil, err
	}
	return c, nil
}

// Host is the client's libp2p host (for its peer ID and connection state).
func (c *Conn) Host() host.Host { return c.host }

// Close ends the stream and stops the host. Calls in progress fail with
// ErrClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	s := c.sess
	c.sess = nil
	c.mu.Unlock()
	if s != nil {
		s.close()
	}
	return c.host.Close()
}

// Document returns the canonical encoding of the PKI document of an epoch.
func (c *Conn) Document(ctx context.Context, epoch uint64) ([]byte, error) {
	resp, err := c.call(ctx, &clientproto.Request{Op: clientproto.OpDocument, Epoch: epoch})
	if err != nil {
		return nil, err
	}
	return resp.Document, nil
}

// Send hands one Sphinx packet to the provider, for firstHop.
func (c *Conn) Send(ctx context.Context, firstHop [32]byte, packet []byte) error {
	_, err := c.call(ctx, &clientproto.Request{Op: clientproto.OpSend, FirstHop: firstHop, Packet: packet})
	return err
}

// Fetch returns up to limit messages of a mailbox with IDs above after.
func (c *Conn) Fetch(ctx context.Context, mb clientproto.MailboxRef, after uint64, limit int) ([]clientproto.Message, error) {
	resp, err := c.call(ctx, &clientproto.Request{Op: clientproto.OpFetch, Mailbox: mb, After: after, Limit: limit})
	if err != nil {
		return nil, err
	}
	return resp.Messages, nil
}

// Ack deletes messages of a mailbox; more than clientproto.MaxAckIDs IDs
// go in several requests.
func (c *Conn) Ack(ctx context.Context, mb clientproto.MailboxRef, ids []uint64) error {
	for len(ids) > 0 {
		n := min(len(ids), clientproto.MaxAckIDs)
		if _, err := c.call(ctx, &clientproto.Request{Op: clientproto.OpAck, Mailbox: mb, IDs: ids[:n]}); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// Redeem presents a credential of the provider's accounting design for
// epoch, asking for packets packets of service; the provider adds what it
// grants to the client's allowance (kept by the provider in memory). A
// provider that charges nothing grants what is asked.
func (c *Conn) Redeem(ctx context.Context, epoch, packets uint64, credential []byte) (granted uint64, receipt []byte, err error) {
	resp, err := c.call(ctx, &clientproto.Request{Op: clientproto.OpRedeem, Epoch: epoch, Packets: packets, Credential: credential})
	if err != nil {
		return 0, nil, err
	}
	return resp.Granted, resp.Receipt, nil
}

// Issue runs one issuance step of the provider's accounting design for
// epoch (blind-signing blinded tokens, say); request and reply are the
// design's bytes. A refusal wraps clientproto.ErrPaymentRequired. Like a
// Redeem, an Issue already written is not repeated on a new stream: the
// provider may have counted it against the client's quota.
func (c *Conn) Issue(ctx context.Context, epoch uint64, request []byte) ([]byte, error) {
	resp, err := c.call(ctx, &clientproto.Request{Op: clientproto.OpIssue, Epoch: epoch, Issuance: request})
	if err != nil {
		return nil, err
	}
	return resp.Issued, nil
}

// call sends a request and waits for its reply, replacing a broken stream
// once. Error replies come back as *clientproto.Error.
func (c *Conn) call(ctx context.Context, req *clientproto.Request) (*clientproto.Response, error) {
	for attempt := 0; ; attempt++ {
		s, err := c.session(ctx)
		if err != nil {
			return nil, err
		}
		resp, written, err := s.roundTrip(ctx, c.nextID.Add(1), req)
		if err == nil {
			return resp, resp.Err()
		}
		if !errors.Is(err, errBroken) {
			return nil, err
		}
		c.drop(s)
		if c.isClosed() {
			return nil, ErrClosed
		}
		if attempt > 0 || (written && (req.Op == clientproto.OpRedeem || req.Op == clientproto.OpIssue)) {
			return nil, err
		}
		c.log.Debug("stream to provider broken; opening another", "err", err)
	}
}

func (c *Conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// drop forgets s if it is still the current session.
func (c *Conn) drop(s *session) {
	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
	}
	c.mu.Unlock()
	s.close()
}

// session returns the current session, opening one if there is none.
// Concurrent callers wait for the same opening.
func (c *Conn) session(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if s := c.sess; s != nil && !s.isBroken() {
			c.mu.Unlock()
			return s, nil
		}
		if ch := c.opening; ch != nil {
			c.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ch := make(chan struct{})
		c.opening = ch
		c.mu.Unlock()

		st, err := c.newStream(ctx)
		var s *session
		if err == nil {
			s = newSession(st)
		}
		c.mu.Lock()
		c.opening = nil
		close(ch)
		if err == nil && c.closed {
			err = ErrClosed
		}
		if err == nil {
			c.sess = s
		}
		c.mu.Unlock()
		if err != nil {
			if s != nil {
				s.close()
			}
			return nil, fmt.Errorf("p2p: opening %s stream: %w", clientproto.Protocol, err)
		}
		return s, nil
	}
}

// session is one protocol stream and the requests waiting on it.
type session struct {
	st     network.Stream
	wsem   chan struct{} // one writer at a time, cancellable
	done   chan struct{} // closed when the stream is broken
	reader sync.WaitGroup

	mu      sync.Mutex
	pending map[uint32]chan *clientproto.Response
	err     error
}

func newSession(st network.Stream) *session {
	s := &session{
		st:      st,
		wsem:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		pending: map[uint32]chan *clientproto.Response{},
	}
	s.reader.Add(1)
	go s.read()
	return s
}

func (s *session) isBroken() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// fail marks the session broken (once) and resets the stream.
func (s *session) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		close(s.done)
	}
	s.mu.Unlock()
	_ = s.st.Reset()
}

func (s *session) close() {
	s.fail(ErrClosed)
	s.reader.Wait()
}

// read delivers replies to the requests waiting for them.
func (s *session) read() {
	defer s.reader.Done()
	for {
		body, err := clientproto.ReadFrame(s.st, nil, clientproto.MaxResponseLength)
		if err != nil {
			s.fail(err)
			return
		}
		resp := new(clientproto.Response)
		if err := resp.Decode(body); err != nil {
			s.fail(err)
			return
		}
		s.mu.Lock()
		ch := s.pending[resp.ID]
		delete(s.pending, resp.ID)
		s.mu.Unlock()
		if ch != nil {
			ch <- resp // buffered; a reply to a cancelled request is dropped
		}
	}
}

// roundTrip writes req with ID id and waits for its reply. written reports
// whether the whole request reached the stream.
func (s *session) roundTrip(ctx context.Context, id uint32, req *clientproto.Request) (resp *clientproto.Response, written bool, err error) {
	r := *req
	r.ID = id
	frame, err := r.AppendFrame(nil)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", clientproto.ErrBadRequest, err)
	}
	ch := make(chan *clientproto.Response, 1)
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return nil, false, fmt.Errorf("%w: %w", errBroken, err)
	}
	s.pending[id] = ch
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}

	select {
	case s.wsem <- struct{}{}:
	case <-ctx.Done():
		forget()
		return nil, false, ctx.Err()
	case <-s.done:
		forget()
		return nil, false, s.brokenErr()
	}
	// A cancelled context interrupts a blocked write; the frame may then be
	// cut, which breaks the stream's framing: the session is failed.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = s.st.SetWriteDeadline(time.Now())
		close(fired)
	})
	_, werr := s.st.Write(frame)
	if !stop() {
		<-fired
		_ = s.st.SetWriteDeadline(time.Time{})
	}
	<-s.wsem
	if werr != nil {
		forget()
		s.fail(werr)
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, fmt.Errorf("%w: %w", errBroken, werr)
	}

	select {
	case resp := <-ch:
		if resp.Op != req.Op {
			// A reply of another shape would be read as, say, an empty
			// mailbox: the provider is broken or lying.
			err := fmt.Errorf("%w: %v reply to a %v request", clientproto.ErrMalformed, resp.Op, req.Op)
			s.fail(err)
			return nil, true, err
		}
		return resp, true, nil
	case <-ctx.Done():
		forget()
		return nil, true, ctx.Err()
	case <-s.done:
		// The reader may have delivered just before failing.
		select {
		case resp := <-ch:
			return resp, true, nil
		default:
		}
		forget()
		return nil, true, s.brokenErr()
	}
}

func (s *session) brokenErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Errorf("%w: %w", errBroken, s.err)
}

// newStream opens a protocol stream to the provider, wrapped by
// Options.WrapStream.
func (c *Conn) newStream(ctx context.Context) (network.Stream, error) {
	if c.host.Network().Connectedness(c.prov) != network.Connected {
		// The connection is gone (the provider restarted, say): dial
		// now. The client paces its own retries (with backoff), so
		// libp2p's dial backoff, which grows to minutes after a few
		// failed dials, would only delay noticing the provider is back.
		if sw, ok := c.host.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(c.prov)
		}
	}
	st, err := c.host.NewStream(ctx, c.prov, clientproto.Protocol)
	if err != nil {
		return nil, err
	}
	if c.wrap != nil {
		st = c.wrap(st)
	}
	return st, nil
}

// Subscribe opens the pushed downstream (docs/SPEC.md, "Pushed
// downstream") on a stream of its own, and returns once the first push
// frame (or the provider's refusal) has arrived.
func (c *Conn) Subscribe(ctx context.Context, cursors []clientproto.Cursor) (client.Downstream, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	frame, err := (&clientproto.Request{ID: c.nextID.Add(1), Op: clientproto.OpSubscribe, Cursors: cursors}).AppendFrame(nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", clientproto.ErrBadRequest, err)
	}
	st, err := c.newStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("p2p: opening a downstream: %w", err)
	}
	d := &downstream{st: st}
	if err := d.write(ctx, frame); err != nil {
		_ = st.Reset()
		return nil, err
	}
	if d.first, err = d.Next(ctx); err != nil {
		_ = st.Reset()
		return nil, err
	}
	return d, nil
}

// downstream is one pushed downstream stream.
type downstream struct {
	st    network.Stream
	first *clientproto.Push
	wmu   sync.Mutex
	rmu   sync.Mutex
	buf   []byte
}

// Next reads the next push frame. An error reply (to the Subscribe) comes
// back as *clientproto.Error.
func (d *downstream) Next(ctx context.Context) (*clientproto.Push, error) {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	if p := d.first; p != nil {
		d.first = nil
		return p, nil
	}
	stop := context.AfterFunc(ctx, func() { _ = d.st.SetReadDeadline(time.Now()) })
	defer stop()
	body, err := clientproto.ReadFrame(d.st, d.buf, clientproto.MaxResponseLength)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", errBroken, err)
	}
	d.buf = body[:0]
	var resp clientproto.Response
	if err := resp.Decode(body); err != nil {
		return nil, err
	}
	if err := resp.Err(); err != nil {
		return nil, err
	}
	if resp.Op != clientproto.OpSubscribe || resp.Push == nil {
		return nil, fmt.Errorf("%w: %v reply on a downstream", clientproto.ErrMalformed, resp.Op)
	}
	// The slots alias the read buffer, which the next read reuses.
	p := *resp.Push
	p.Messages = slices.Clone(p.Messages)
	for i := range p.Messages {
		p.Messages[i].Payload = slices.Clone(p.Messages[i].Payload)
	}
	return &p, nil
}

// Pulse writes one pulse.
func (d *downstream) Pulse(ctx context.Context, req *clientproto.Request) error {
	frame, err := req.AppendFrame(nil)
	if err != nil {
		return fmt.Errorf("%w: %w", clientproto.ErrBadRequest, err)
	}
	return d.write(ctx, frame)
}

func (d *downstream) write(ctx context.Context, frame []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	_ = d.st.SetWriteDeadline(deadline)
	if _, err := d.st.Write(frame); err != nil {
		return fmt.Errorf("%w: %w", errBroken, err)
	}
	return nil
}

// Close ends the downstream.
func (d *downstream) Close() error { return d.st.Reset() }
