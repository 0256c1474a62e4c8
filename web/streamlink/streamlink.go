// Package streamlink is a client.Provider over any byte stream that carries
// the client protocol (clientproto.Protocol): the browser client opens its
// streams through js-libp2p and hands them here, so the protocol's framing,
// request IDs and error replies are the Go code the native client's
// client/p2p speaks, not a second implementation in JavaScript.
//
// A Link keeps one stream open and multiplexes requests on it by ID; a
// broken stream is replaced on the next call (once per call), which is
// how a provider that went away and came back is reconnected.
package streamlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces/wallet"
)

// ErrClosed: the Link was closed.
var ErrClosed = errors.New("streamlink: closed")

// errBroken marks a failure of the stream itself (not a reply).
var errBroken = errors.New("streamlink: stream to provider broken")

// Stream is one client-protocol stream to the provider.
type Stream interface {
	io.Reader
	io.Writer
	// Reset ends the stream both ways, unblocking a Read.
	Reset() error
}

// Opener opens a new client-protocol stream to the provider, dialling it
// if there is no connection.
type Opener func(ctx context.Context) (Stream, error)

// Link is a client.Provider (and a wallet.Link) over streams from an
// Opener. It is safe for concurrent use.
type Link struct {
	open    Opener
	onClose func() error
	nextID  atomic.Uint32

	mu      sync.Mutex
	closed  bool
	sess    *session
	opening chan struct{}
}

var (
	_ client.Provider = (*Link)(nil)
	_ wallet.Link     = (*Link)(nil)
)

// New returns a Link that opens its streams with open; onClose (may be
// nil) runs once on Close, after the stream is reset (to stop the libp2p
// node behind it, say). New does no I/O.
func New(open Opener, onClose func() error) *Link {
	return &Link{open: open, onClose: onClose}
}

// Dial is New, then opens the first stream, so an unreachable provider is
// an error now.
func Dial(ctx context.Context, open Opener, onClose func() error) (*Link, error) {
	l := New(open, onClose)
	if _, err := l.session(ctx); err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

// Close resets the stream and runs onClose. Calls in progress fail with
// ErrClosed.
func (l *Link) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	s := l.sess
	l.sess = nil
	l.mu.Unlock()
	if s != nil {
		s.close()
	}
	if l.onClose != nil {
		return l.onClose()
	}
	return nil
}

// Document returns the canonical encoding of the PKI document of an epoch.
func (l *Link) Document(ctx context.Context, epoch uint64) ([]byte, error) {
	resp, err := l.call(ctx, &clientproto.Request{Op: clientproto.OpDocument, Epoch: epoch})
	if err != nil {
		return nil, err
	}
	return resp.Document, nil
}

// Send hands one Sphinx packet to the provider, for firstHop.
func (l *Link) Send(ctx context.Context, firstHop [32]byte, packet []byte) error {
	_, err := l.call(ctx, &clientproto.Request{Op: clientproto.OpSend, FirstHop: firstHop, Packet: packet})
	return err
}

// Fetch returns up to limit messages of a mailbox with IDs above after.
func (l *Link) Fetch(ctx context.Context, mb clientproto.MailboxRef, after uint64, limit int) ([]clientproto.Message, error) {
	resp, err := l.call(ctx, &clientproto.Request{Op: clientproto.OpFetch, Mailbox: mb, After: after, Limit: limit})
	if err != nil {
		return nil, err
	}
	return resp.Messages, nil
}

// Ack deletes messages of a mailbox, at most clientproto.MaxAckIDs IDs a
// request.
func (l *Link) Ack(ctx context.Context, mb clientproto.MailboxRef, ids []uint64) error {
	for len(ids) > 0 {
		n := min(len(ids), clientproto.MaxAckIDs)
		if _, err := l.call(ctx, &clientproto.Request{Op: clientproto.OpAck, Mailbox: mb, IDs: ids[:n]}); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// Redeem presents a credential of the provider's accounting design.
func (l *Link) Redeem(ctx context.Context, epoch, packets uint64, credential []byte) (uint64, []byte, error) {
	resp, err := l.call(ctx, &clientproto.Request{Op: clientproto.OpRedeem, Epoch: epoch, Packets: packets, Credential: credential})
	if err != nil {
		return 0, nil, err
	}
	return resp.Granted, resp.Receipt, nil
}

// Issue runs one issuance step of the provider's accounting design.
func (l *Link) Issue(ctx context.Context, epoch uint64, request []byte) ([]byte, error) {
	resp, err := l.call(ctx, &clientproto.Request{Op: clientproto.OpIssue, Epoch: epoch, Issuance: request})
	if err != nil {
		return nil, err
	}
	return resp.Issued, nil
}

// call sends a request and waits for its reply, replacing a broken stream
// once (but never repeating a Redeem or Issue that was written: the
// provider may have counted it). Error replies come back as
// *clientproto.Error.
func (l *Link) call(ctx context.Context, req *clientproto.Request) (*clientproto.Response, error) {
	for attempt := 0; ; attempt++ {
		s, err := l.session(ctx)
		if err != nil {
			return nil, err
		}
		resp, written, err := s.roundTrip(ctx, l.nextID.Add(1), req)
		if err == nil {
			return resp, resp.Err()
		}
		if !errors.Is(err, errBroken) {
			return nil, err
		}
		l.drop(s)
		if l.isClosed() {
			return nil, ErrClosed
		}
		if attempt > 0 || (written && (req.Op == clientproto.OpRedeem || req.Op == clientproto.OpIssue)) {
			return nil, err
		}
	}
}

func (l *Link) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func (l *Link) drop(s *session) {
	l.mu.Lock()
	if l.sess == s {
		l.sess = nil
	}
	l.mu.Unlock()
	s.close()
}

// session returns the current session, opening one if there is none;
// concurrent callers wait for the same opening.
func (l *Link) session(ctx context.Context) (*session, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, ErrClosed
		}
		if s := l.sess; s != nil && !s.isBroken() {
			l.mu.Unlock()
			return s, nil
		}
		if ch := l.opening; ch != nil {
			l.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ch := make(chan struct{})
		l.opening = ch
		l.mu.Unlock()

		st, err := l.open(ctx)
		var s *session
		if err == nil {
			s = newSession(st)
		}
		l.mu.Lock()
		l.opening = nil
		close(ch)
		if err == nil && l.closed {
			err = ErrClosed
		}
		if err == nil {
			l.sess = s
		}
		l.mu.Unlock()
		if err != nil {
			if s != nil {
				s.close()
			}
			return nil, fmt.Errorf("streamlink: opening %s stream: %w", clientproto.Protocol, err)
		}
		return s, nil
	}
}

// session is one stream and the requests waiting on it.
type session struct {
	st     Stream
	wsem   chan struct{}
	done   chan struct{}
	reader sync.WaitGroup

	mu      sync.Mutex
	pending map[uint32]chan *clientproto.Response
	err     error
}

func newSession(st Stream) *session {
	s := &session{st: st, wsem: make(chan struct{}, 1), done: make(chan struct{}),
		pending: map[uint32]chan *clientproto.Response{}}
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

func (s *session) fail(err error) {
	s.mu.Lock()
	first := s.err == nil
	if first {
		s.err = err
		close(s.done)
	}
	s.mu.Unlock()
	if first {
		_ = s.st.Reset()
	}
}

func (s *session) close() {
	s.fail(ErrClosed)
	s.reader.Wait()
}

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
			ch <- resp
		}
	}
}

// roundTrip writes req under id and waits for its reply; written reports
// whether the request reached the stream.
func (s *session) roundTrip(ctx context.Context, id uint32, req *clientproto.Request) (*clientproto.Response, bool, error) {
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
	// A write cancelled half way would cut the framing: a context that
	// ends during a write fails the session, which unblocks the write.
	stop := context.AfterFunc(ctx, func() { s.fail(ctx.Err()) })
	_, werr := s.st.Write(frame)
	stop()
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
			err := fmt.Errorf("%w: %v reply to a %v request", clientproto.ErrMalformed, resp.Op, req.Op)
			s.fail(err)
			return nil, true, err
		}
		return resp, true, nil
	case <-ctx.Done():
		forget()
		return nil, true, ctx.Err()
	case <-s.done:
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
