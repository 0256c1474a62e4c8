// Package streamlink is a client.Provider over any byte stream that carries
// the client protocol (clientproto.Protocol): the browser client opens its
// streams through js-libp2p and hands them here, so the protocol's framing,
// request IDs and error replies are the Go code the native client's
// client/p2p speaks, not a second implementation in JavaScript.
//
// A Link keeps one stream open and multiplexes requests on it by ID; a
// broken stream is replaced on the next call (once per call), which is
// how a provider that went away and came back is reconnected. The pushed
// downstream (Subscribe) runs on a second stream.
package streamlink

import (
	"context"
	"errors"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/client/link"
	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces/wallet"
)

// ErrClosed: the Link was closed.
var ErrClosed = errors.New("streamlink: closed")

// errBroken marks a failure of the stream itself (not a reply).
var errBroken = errors.New("streamlink: stream to provider broken")

// Stream is one client-protocol stream to the provider: a Reader and a
// Writer whose Reset ends the stream both ways, unblocking a Read.
type Stream = link.Stream

// Opener opens a new client-protocol stream to the provider, dialling it
// if there is no connection.
type Opener func(ctx context.Context) (Stream, error)

// Link is a client.Provider (and a wallet.Link) over streams from an
// Opener: its calls (Document, Send, Fetch, Ack, Redeem, Issue) are the
// embedded link.Caller's. It is safe for concurrent use.
type Link struct {
	*link.Caller
	onClose func() error
}

var (
	_ client.Provider   = (*Link)(nil)
	_ client.Subscriber = (*Link)(nil)
	_ wallet.Link       = (*Link)(nil)
)

// New returns a Link that opens its streams with open; onClose (may be
// nil) runs once on Close, after the stream is reset (to stop the libp2p
// node behind it, say). New does no I/O.
func New(open Opener, onClose func() error) *Link {
	return &Link{
		Caller:  link.New(link.Config{Open: open, Name: "streamlink", Closed: ErrClosed, Broken: errBroken}),
		onClose: onClose,
	}
}

// Dial is New, then opens the first stream, so an unreachable provider is
// an error now.
func Dial(ctx context.Context, open Opener, onClose func() error) (*Link, error) {
	l := New(open, onClose)
	if err := l.Connect(ctx); err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

// Subscribe opens the pushed downstream (docs/SPEC.md, "Pushed
// downstream") on a stream of its own, as the native client does
// (link.Caller.Subscribe): a browser client receives in constant-shape
// frames and does not poll.
func (l *Link) Subscribe(ctx context.Context, cursors []clientproto.Cursor) (client.Downstream, error) {
	d, err := l.Caller.Subscribe(ctx, cursors)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Close resets the stream and runs onClose. Calls in progress fail with
// ErrClosed.
func (l *Link) Close() error {
	if !l.Shutdown() {
		return nil
	}
	if l.onClose != nil {
		return l.onClose()
	}
	return nil
}
