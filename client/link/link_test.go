package link

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
)

// pipeStream is one end of net.Pipe as a Stream (with write deadlines).
type pipeStream struct{ net.Conn }

func (p pipeStream) Reset() error { return p.Close() }

// answer serves Document requests on c with the real codec until c breaks.
func answer(c net.Conn) {
	defer c.Close()
	for {
		body, err := clientproto.ReadFrame(c, nil, clientproto.MaxRequestLength)
		if err != nil {
			return
		}
		var req clientproto.Request
		if err := req.Decode(body); err != nil {
			return
		}
		frame, err := (&clientproto.Response{ID: req.ID, Op: req.Op, Document: []byte{byte(req.Epoch)}}).AppendFrame(nil)
		if err != nil {
			return
		}
		if _, err := c.Write(frame); err != nil {
			return
		}
	}
}

// A write blocked on a provider that reads nothing is cut when the
// context ends, both ways of interrupting it; the cut stream is not
// reused, and the next call gets a new one.
func TestCancelledWriteReplacesStream(t *testing.T) {
	errClosed, errBroken := errors.New("closed"), errors.New("broken")
	for _, tc := range []struct {
		name     string
		deadline bool
	}{{"fail session", false}, {"write deadline", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var opens atomic.Int32
			var stuck []net.Conn
			c := New(Config{
				Name: "test", Closed: errClosed, Broken: errBroken, WriteDeadline: tc.deadline,
				Open: func(ctx context.Context) (Stream, error) {
					a, b := net.Pipe()
					if opens.Add(1) == 1 {
						stuck = append(stuck, b) // reads nothing: writes block
					} else {
						go answer(b)
					}
					return pipeStream{a}, nil
				},
			})
			defer func() {
				if !c.Shutdown() || c.Shutdown() {
					t.Error("Shutdown should report true once")
				}
				for _, s := range stuck {
					s.Close()
				}
			}()
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			if _, err := c.Document(ctx, 7); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("blocked write: %v, want context.DeadlineExceeded", err)
			}
			doc, err := c.Document(t.Context(), 9)
			if err != nil || len(doc) != 1 || doc[0] != 9 {
				t.Fatalf("after the cut: %x, %v", doc, err)
			}
			if n := opens.Load(); n != 2 {
				t.Fatalf("%d streams opened, want 2", n)
			}
		})
	}
}

func TestClosed(t *testing.T) {
	errClosed := errors.New("closed")
	c := New(Config{Name: "test", Closed: errClosed, Broken: errors.New("broken"),
		Open: func(ctx context.Context) (Stream, error) { return nil, errors.New("unreachable") }})
	if err := c.Connect(t.Context()); err == nil {
		t.Fatal("Connect to an unreachable provider succeeded")
	}
	c.Shutdown()
	if !c.IsClosed() {
		t.Fatal("IsClosed after Shutdown is false")
	}
	if err := c.Send(t.Context(), [32]byte{}, []byte("p")); !errors.Is(err, errClosed) {
		t.Fatalf("Send after Shutdown: %v, want Config.Closed", err)
	}
}
