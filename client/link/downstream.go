package link

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/sottonet/sotto/core/clientproto"
)

// Subscribe opens the pushed downstream (docs/SPEC.md, "Pushed
// downstream") on a stream of its own, and returns once the first push
// frame (or the provider's refusal, as a *clientproto.Error) has arrived.
// Transports wrap it to implement client.Subscriber.
func (c *Caller) Subscribe(ctx context.Context, cursors []clientproto.Cursor) (*Downstream, error) {
	if c.IsClosed() {
		return nil, c.cfg.Closed
	}
	frame, err := (&clientproto.Request{ID: c.NextID(), Op: clientproto.OpSubscribe, Cursors: cursors}).AppendFrame(nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", clientproto.ErrBadRequest, err)
	}
	st, err := c.cfg.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: opening a downstream: %w", c.cfg.Name, err)
	}
	d := &Downstream{
		s:      newStreamWriter(st, &c.cfg),
		frames: make(chan *clientproto.Push, 1),
	}
	d.reader.Add(1)
	go d.read()
	if err := d.s.send(ctx, frame); err != nil {
		_ = d.Close()
		return nil, err
	}
	first, err := d.Next(ctx)
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	d.first = first
	return d, nil
}

// Downstream is one open pushed downstream. One goroutine reads its push
// frames ahead of Next (one frame at most), so a Next abandoned by its
// context loses no frame: the next call gets it.
type Downstream struct {
	s      *streamWriter
	frames chan *clientproto.Push // closed after end is set
	end    error                  // why the reader stopped
	reader sync.WaitGroup

	rmu   sync.Mutex
	first *clientproto.Push
	err   error // the reader's end, once Next has seen it
}

// read decodes push frames until the stream ends or breaks the protocol;
// then it records why (end) and closes frames.
func (d *Downstream) read() {
	defer d.reader.Done()
	defer close(d.frames)
	for {
		body, err := clientproto.ReadFrame(d.s.st, nil, clientproto.MaxResponseLength)
		if err != nil {
			d.s.fail(err)
			d.end = d.s.brokenErr()
			return
		}
		p, err := decodePush(body)
		if err != nil {
			// A refusal (*clientproto.Error) or a malformed frame, as is.
			d.s.fail(err)
			d.end = err
			return
		}
		select {
		case d.frames <- p:
		case <-d.s.done:
			d.end = d.s.brokenErr()
			return
		}
	}
}

// decodePush reads one frame of a downstream: a push, or the error reply
// that refused the Subscribe.
func decodePush(body []byte) (*clientproto.Push, error) {
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
	p := *resp.Push
	p.Messages = slices.Clone(p.Messages)
	for i := range p.Messages {
		p.Messages[i].Payload = slices.Clone(p.Messages[i].Payload)
	}
	return &p, nil
}

// Next waits for the next push frame. An error reply (to the Subscribe)
// comes back as *clientproto.Error; once the stream has ended every call
// returns the same error.
func (d *Downstream) Next(ctx context.Context) (*clientproto.Push, error) {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	if p := d.first; p != nil {
		d.first = nil
		return p, nil
	}
	if d.err != nil {
		return nil, d.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err // a frame waiting stays for the next call (select would pick at random)
	}
	select {
	case p, ok := <-d.frames:
		if ok {
			return p, nil
		}
		d.err = d.end
		return nil, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Pulse writes one pulse (op OpPulse).
func (d *Downstream) Pulse(ctx context.Context, req *clientproto.Request) error {
	b, err := req.AppendFrame(nil)
	if err != nil {
		return fmt.Errorf("%w: %w", clientproto.ErrBadRequest, err)
	}
	return d.s.send(ctx, b)
}

// Close ends the downstream: the stream is reset and its reader stopped.
func (d *Downstream) Close() error {
	d.s.fail(d.s.cfg.Closed)
	d.reader.Wait()
	return nil
}

// streamWriter is a stream written one frame at a time, with a write
// interrupted by its context (writeFrame); a failed or cut write, or the
// reader's end, breaks it (fail) and resets the stream. A session and a
// Downstream each have one.
type streamWriter struct {
	st   Stream
	cfg  *Config
	wsem chan struct{} // one writer at a time, cancellable
	done chan struct{} // closed when the stream is broken

	mu  sync.Mutex
	err error // why it broke
}

func newStreamWriter(st Stream, cfg *Config) *streamWriter {
	return &streamWriter{st: st, cfg: cfg, wsem: make(chan struct{}, 1), done: make(chan struct{})}
}

// fail marks the stream broken and resets it (once).
func (w *streamWriter) fail(err error) {
	w.mu.Lock()
	first := w.err == nil
	if first {
		w.err = err
		close(w.done)
	}
	w.mu.Unlock()
	if first {
		_ = w.st.Reset()
	}
}

func (w *streamWriter) brokenErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Errorf("%w: %w", w.cfg.Broken, w.err)
}

// send writes one frame; a write that fails or is cut breaks the stream.
func (w *streamWriter) send(ctx context.Context, frame []byte) error {
	select {
	case w.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.done:
		return w.brokenErr()
	}
	defer func() { <-w.wsem }()
	if err := writeFrame(ctx, w.st, w.cfg, frame, w.fail); err != nil {
		w.fail(err)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %w", w.cfg.Broken, err)
	}
	return nil
}
