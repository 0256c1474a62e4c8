package streamlink

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
)

// pipeStream is one end of net.Pipe as a Stream.
type pipeStream struct{ net.Conn }

func (p pipeStream) Reset() error { return p.Close() }

// peer answers requests on streams it is handed, with the real codec:
// Document requests are answered with the epoch's bytes after a delay
// that makes replies overtake each other; Redeem breaks the stream after
// reading the request (a provider gone mid-call); Send of a packet
// starting with 0xff breaks the stream before replying.
type peer struct {
	requests atomic.Int32
}

func (p *peer) serve(c net.Conn) {
	var wmu sync.Mutex
	for {
		body, err := clientproto.ReadFrame(c, nil, clientproto.MaxRequestLength)
		if err != nil {
			c.Close()
			return
		}
		var req clientproto.Request
		if err := req.Decode(body); err != nil {
			c.Close()
			return
		}
		p.requests.Add(1)
		resp := &clientproto.Response{ID: req.ID, Op: req.Op}
		switch {
		case req.Op == clientproto.OpRedeem:
			c.Close()
			return
		case req.Op == clientproto.OpSend && len(req.Packet) > 0 && req.Packet[0] == 0xff:
			c.Close()
			return
		case req.Op == clientproto.OpDocument && req.Epoch == 0:
			resp.Code, resp.Message = clientproto.CodeNotFound, "no document"
		case req.Op == clientproto.OpDocument:
			resp.Document = []byte{byte(req.Epoch)}
		}
		go func(epoch uint64) {
			time.Sleep(time.Duration(10-epoch%10) * time.Millisecond) // later requests answered first
			frame, err := resp.AppendFrame(nil)
			if err != nil {
				panic(err)
			}
			wmu.Lock()
			defer wmu.Unlock()
			c.Write(frame)
		}(req.Epoch)
	}
}

func newLink(t *testing.T) (*Link, *peer, *atomic.Int32) {
	t.Helper()
	p := &peer{}
	var opens atomic.Int32
	l := New(func(ctx context.Context) (Stream, error) {
		opens.Add(1)
		a, b := net.Pipe()
		go p.serve(b)
		return pipeStream{a}, nil
	}, nil)
	t.Cleanup(func() { l.Close() })
	return l, p, &opens
}

func TestRepliesOutOfOrderReachTheirRequests(t *testing.T) {
	l, _, opens := newLink(t)
	var wg sync.WaitGroup
	for e := uint64(1); e <= 30; e++ {
		wg.Go(func() {
			doc, err := l.Document(t.Context(), e)
			if err != nil || len(doc) != 1 || uint64(doc[0]) != e {
				t.Errorf("Document(%d) = %v, %v", e, doc, err)
			}
		})
	}
	wg.Wait()
	if n := opens.Load(); n != 1 {
		t.Errorf("%d streams opened for concurrent calls, want 1", n)
	}
}

func TestErrorRepliesKeepTheirCode(t *testing.T) {
	l, _, _ := newLink(t)
	_, err := l.Document(t.Context(), 0)
	if !errors.Is(err, clientproto.ErrNoDocument) {
		t.Fatalf("Document without one: %v, want ErrNoDocument", err)
	}
	if _, err := l.Document(t.Context(), 3); err != nil {
		t.Fatalf("an error reply broke the stream: %v", err)
	}
}

func TestBrokenStreamIsReplacedOnce(t *testing.T) {
	l, p, opens := newLink(t)
	err := l.Send(t.Context(), [32]byte{}, []byte{0xff})
	if err == nil {
		t.Fatal("a send on a stream that breaks every time succeeded")
	}
	if n := opens.Load(); n != 2 {
		t.Errorf("%d streams opened, want 2 (the first and one replacement)", n)
	}
	if n := p.requests.Load(); n != 2 {
		t.Errorf("the provider saw the send %d times, want 2", n)
	}
	if _, err := l.Document(t.Context(), 4); err != nil {
		t.Fatalf("the next call did not open a working stream: %v", err)
	}
}

func TestRedeemWrittenIsNotRepeated(t *testing.T) {
	l, p, _ := newLink(t)
	if _, _, err := l.Redeem(t.Context(), 1, 100, []byte("token")); err == nil {
		t.Fatal("Redeem on a stream broken after the request succeeded")
	}
	if n := p.requests.Load(); n != 1 {
		t.Errorf("the provider saw the Redeem %d times, want 1: a credential may be spent only once", n)
	}
}

func TestCancelledCallAndClose(t *testing.T) {
	open := func(ctx context.Context) (Stream, error) {
		a, b := net.Pipe()
		go func() { // reads requests, never answers
			buf := make([]byte, 4096)
			for {
				if _, err := b.Read(buf); err != nil {
					return
				}
			}
		}()
		return pipeStream{a}, nil
	}
	closed := false
	l := New(open, func() error { closed = true; return nil })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := l.Document(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unanswered call: %v, want the context's deadline", err)
	}
	if err := l.Close(); err != nil || !closed {
		t.Fatalf("Close: %v, onClose ran: %v", err, closed)
	}
	if _, err := l.Document(t.Context(), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v, want ErrClosed", err)
	}
}
