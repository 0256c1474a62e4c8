package link

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
)

// pushServer answers a Subscribe on c with pushes seq 1..n (one message
// each), then reads pulses and reports their Seq on pulses; with refuse
// set it answers the Subscribe with that code instead.
func pushServer(t *testing.T, c net.Conn, n int, refuse clientproto.Code, pulses chan<- uint64) {
	defer c.Close()
	body, err := clientproto.ReadFrame(c, nil, clientproto.MaxRequestLength)
	if err != nil {
		return
	}
	var req clientproto.Request
	if err := req.Decode(body); err != nil || req.Op != clientproto.OpSubscribe {
		t.Errorf("first frame: op %v, %v; want a Subscribe", req.Op, err)
		return
	}
	if refuse != 0 {
		frame, _ := (&clientproto.Response{ID: req.ID, Op: req.Op, Code: refuse, Message: "no"}).AppendFrame(nil)
		_, _ = c.Write(frame)
		return
	}
	go func() {
		for {
			body, err := clientproto.ReadFrame(c, nil, clientproto.MaxRequestLength)
			if err != nil {
				return
			}
			var p clientproto.Request
			if err := p.Decode(body); err != nil {
				t.Errorf("pulse: %v", err)
				return
			}
			pulses <- p.Seq
		}
	}()
	for i := 1; i <= n; i++ {
		push := &clientproto.Push{Seq: uint64(i), SlotLength: 128, Slots: 1, Messages: []clientproto.Pushed{
			{Message: clientproto.Message{ID: uint64(i), Expires: time.Unix(1e9, 0), StoredMessage: clientproto.StoredMessage{Payload: []byte{byte(i)}}}},
		}}
		frame, err := (&clientproto.Response{ID: req.ID, Op: clientproto.OpSubscribe, Push: push}).AppendFrame(nil)
		if err != nil {
			t.Errorf("push %d: %v", i, err)
			return
		}
		if _, err := c.Write(frame); err != nil {
			return
		}
	}
	time.Sleep(200 * time.Millisecond) // let the pulses arrive before the end
}

func downCaller(serve func(net.Conn)) *Caller {
	return New(Config{Name: "test", Closed: errors.New("closed"), Broken: errors.New("broken"),
		Open: func(ctx context.Context) (Stream, error) {
			a, b := net.Pipe()
			go serve(b)
			return pipeStream{a}, nil
		}})
}

var ownCursor = []clientproto.Cursor{{Mailbox: clientproto.MailboxRef{}}}

// Pushes arrive in order, a Next abandoned by its context loses no frame,
// pulses reach the provider, and the stream's end is an error wrapping
// Config.Broken on every later Next.
func TestDownstreamDeliversEveryPushInOrder(t *testing.T) {
	pulses := make(chan uint64, 8)
	c := downCaller(func(b net.Conn) { pushServer(t, b, 3, 0, pulses) })
	d, err := c.Subscribe(t.Context(), ownCursor)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for want := uint64(1); want <= 3; want++ {
		if want == 2 {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := d.Next(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Next on a cancelled context: %v", err)
			}
		}
		p, err := d.Next(t.Context())
		if err != nil || p.Seq != want || len(p.Messages) != 1 || p.Messages[0].Payload[0] != byte(want) {
			t.Fatalf("push %d: %+v, %v", want, p, err)
		}
		if err := d.Pulse(t.Context(), &clientproto.Request{Op: clientproto.OpPulse, Seq: want}); err != nil {
			t.Fatalf("pulse %d: %v", want, err)
		}
		if got := <-pulses; got != want {
			t.Fatalf("pulse seq %d reached the provider, want %d", got, want)
		}
	}
	for range 2 {
		if _, err := d.Next(t.Context()); !errors.Is(err, c.cfg.Broken) {
			t.Fatalf("Next after the stream ended: %v, want Broken", err)
		}
	}
}

// A provider that refuses the Subscribe gives its code, not a broken
// stream, so the client can fall back to polling.
func TestDownstreamRefusalIsTheProvidersCode(t *testing.T) {
	c := downCaller(func(b net.Conn) { pushServer(t, b, 0, clientproto.CodeUnsupported, nil) })
	if _, err := c.Subscribe(t.Context(), ownCursor); !errors.Is(err, clientproto.ErrUnsupported) {
		t.Fatalf("refused Subscribe: %v, want ErrUnsupported", err)
	}
}

// Close unblocks a waiting Next and stops the reader.
func TestDownstreamCloseUnblocksNext(t *testing.T) {
	c := downCaller(func(b net.Conn) { pushServer(t, b, 1, 0, make(chan uint64, 8)) })
	d, err := c.Subscribe(t.Context(), ownCursor)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Next(t.Context()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := d.Next(t.Context())
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = d.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Next after Close returned a push")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock Next")
	}
}
