// Package link is the client side of the client protocol
// (clientproto.Protocol) over any byte stream: it gives request IDs,
// writes request frames, matches replies to the calls waiting for them
// (one reader goroutine a stream), turns error replies into Go errors and
// replaces a broken stream once per call. It knows nothing of the
// transport: client/p2p hands it libp2p streams, web/streamlink the
// streams JavaScript opens, so it builds for js/wasm and imports neither
// libp2p nor the host.
package link

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
)

// Stream is one client-protocol stream to the provider.
type Stream interface {
	io.Reader
	io.Writer
	// Reset ends the stream both ways, unblocking a Read.
	Reset() error
}

// Config says how a Caller opens its streams and which errors it returns.
type Config struct {
	// Open opens a new client-protocol stream to the provider. Required.
	Open func(ctx context.Context) (Stream, error)
	// Name prefixes the Caller's own error messages ("p2p").
	Name string
	// Closed is the error of calls after Close (the transport's
	// ErrClosed). Required.
	Closed error
	// Broken marks a failure of the stream itself, as opposed to a reply.
	// Required.
	Broken error
	// WriteDeadline, when set, says the streams have a SetWriteDeadline
	// method: a context that ends during a write sets the deadline. When
	// not set, such a context fails the session, which resets the stream
	// and so unblocks the write. Either way the session is then failed,
	// since the frame may have been cut.
	WriteDeadline bool
	// OnRetry, if set, is told of a broken stream before the call is
	// tried again on a new one.
	OnRetry func(err error)
}

// A Caller multiplexes calls on one stream by request ID and replaces a
// broken stream on the next call. It is safe for concurrent use.
type Caller struct {
	cfg    Config
	nextID atomic.Uint32

	mu      sync.Mutex
	closed  bool
	sess    *session
	opening chan struct{} // closed when the session being opened is ready
}

// New returns a Caller; it does no I/O.
func New(cfg Config) *Caller { return &Caller{cfg: cfg} }

// NextID returns a fresh request ID (for a request sent on a stream of
// its own, like a Subscribe).
func (c *Caller) NextID() uint32 { return c.nextID.Add(1) }

// Connect opens a stream now unless one is open, so an unreachable
// provider is an error now.
func (c *Caller) Connect(ctx context.Context) error {
	_, err := c.session(ctx)
	return err
}

// Shutdown resets the stream; calls in progress and later fail with
// Config.Closed. It reports false if the Caller was already shut down.
func (c *Caller) Shutdown() bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.closed = true
	s := c.sess
	c.sess = nil
	c.mu.Unlock()
	if s != nil {
		s.close()
	}
	return true
}

// IsClosed reports whether Shutdown was called.
func (c *Caller) IsClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Document returns the canonical encoding of the PKI document of an epoch.
func (c *Caller) Document(ctx context.Context, epoch uint64) ([]byte, error) {
	resp, err := c.Call(ctx, &clientproto.Request{Op: clientproto.OpDocument, Epoch: epoch})
	if err != nil {
		return nil, err
	}
	return resp.Document, nil
}

// Send hands one Sphinx packet to the provider, for firstHop.
func (c *Caller) Send(ctx context.Context, firstHop [32]byte, packet []byte) error {
	_, err := c.Call(ctx, &clientproto.Request{Op: clientproto.OpSend, FirstHop: firstHop, Packet: packet})
	return err
}

// Fetch returns up to limit messages of a mailbox with IDs above after.
func (c *Caller) Fetch(ctx context.Context, mb clientproto.MailboxRef, after uint64, limit int) ([]clientproto.Message, error) {
	resp, err := c.Call(ctx, &clientproto.Request{Op: clientproto.OpFetch, Mailbox: mb, After: after, Limit: limit})
	if err != nil {
		return nil, err
	}
	return resp.Messages, nil
}

// Ack deletes messages of a mailbox; more than clientproto.MaxAckIDs IDs
// go in several requests.
func (c *Caller) Ack(ctx context.Context, mb clientproto.MailboxRef, ids []uint64) error {
	for len(ids) > 0 {
		n := min(len(ids), clientproto.MaxAckIDs)
		if _, err := c.Call(ctx, &clientproto.Request{Op: clientproto.OpAck, Mailbox: mb, IDs: ids[:n]}); err != nil {
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
func (c *Caller) Redeem(ctx context.Context, epoch, packets uint64, credential []byte) (granted uint64, receipt []byte, err error) {
	resp, err := c.Call(ctx, &clientproto.Request{Op: clientproto.OpRedeem, Epoch: epoch, Packets: packets, Credential: credential})
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
func (c *Caller) Issue(ctx context.Context, epoch uint64, request []byte) ([]byte, error) {
	resp, err := c.Call(ctx, &clientproto.Request{Op: clientproto.OpIssue, Epoch: epoch, Issuance: request})
	if err != nil {
		return nil, err
	}
	return resp.Issued, nil
}

// Call sends a request (its ID is set here) and waits for its reply,
// replacing a broken stream once (but never repeating a Redeem or Issue
// that was written: the provider may have counted it). Error replies come
// back as *clientproto.Error.
func (c *Caller) Call(ctx context.Context, req *clientproto.Request) (*clientproto.Response, error) {
	for attempt := 0; ; attempt++ {
		s, err := c.session(ctx)
		if err != nil {
			return nil, err
		}
		resp, written, err := s.roundTrip(ctx, c.nextID.Add(1), req)
		if err == nil {
			return resp, resp.Err()
		}
		if !errors.Is(err, c.cfg.Broken) {
			return nil, err
		}
		c.drop(s)
		if c.IsClosed() {
			return nil, c.cfg.Closed
		}
		if attempt > 0 || (written && (req.Op == clientproto.OpRedeem || req.Op == clientproto.OpIssue)) {
			return nil, err
		}
		if c.cfg.OnRetry != nil {
			c.cfg.OnRetry(err)
		}
	}
}

// drop forgets s if it is still the current session.
func (c *Caller) drop(s *session) {
	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
	}
	c.mu.Unlock()
	s.close()
}

// session returns the current session, opening one if there is none.
// Concurrent callers wait for the same opening.
func (c *Caller) session(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, c.cfg.Closed
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

		st, err := c.cfg.Open(ctx)
		var s *session
		if err == nil {
			s = newSession(st, &c.cfg)
		}
		c.mu.Lock()
		c.opening = nil
		close(ch)
		if err == nil && c.closed {
			err = c.cfg.Closed
		}
		if err == nil {
			c.sess = s
		}
		c.mu.Unlock()
		if err != nil {
			if s != nil {
				s.close()
			}
			return nil, fmt.Errorf("%s: opening %s stream: %w", c.cfg.Name, clientproto.Protocol, err)
		}
		return s, nil
	}
}

// session is one protocol stream and the requests waiting on it (under
// the streamWriter's mu).
type session struct {
	*streamWriter
	reader  sync.WaitGroup
	pending map[uint32]chan *clientproto.Response
}

func newSession(st Stream, cfg *Config) *session {
	s := &session{
		streamWriter: newStreamWriter(st, cfg),
		pending:      map[uint32]chan *clientproto.Response{},
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

func (s *session) close() {
	s.fail(s.cfg.Closed)
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

// deadliner is a Stream with write deadlines (Config.WriteDeadline).
type deadliner interface {
	SetWriteDeadline(time.Time) error
}

// write writes frame, interrupted when ctx ends (Config.WriteDeadline).
func (s *session) write(ctx context.Context, frame []byte) error {
	return writeFrame(ctx, s.st, s.cfg, frame, s.fail)
}

// writeFrame writes frame to st, interrupted when ctx ends: by a write
// deadline (Config.WriteDeadline), else by fail, which resets the stream.
func writeFrame(ctx context.Context, st Stream, cfg *Config, frame []byte, fail func(error)) error {
	if d, ok := st.(deadliner); ok && cfg.WriteDeadline {
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			_ = d.SetWriteDeadline(time.Now())
			close(fired)
		})
		_, err := st.Write(frame)
		if !stop() {
			<-fired
			_ = d.SetWriteDeadline(time.Time{})
		}
		return err
	}
	stop := context.AfterFunc(ctx, func() { fail(ctx.Err()) })
	_, err := st.Write(frame)
	stop()
	return err
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
		return nil, false, fmt.Errorf("%w: %w", s.cfg.Broken, err)
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
	werr := s.write(ctx, frame)
	<-s.wsem
	if werr != nil {
		forget()
		s.fail(werr)
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, fmt.Errorf("%w: %w", s.cfg.Broken, werr)
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
