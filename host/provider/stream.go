package provider

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	pb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sottonet/sotto/core/clientproto"
)

// Handle serves one client stream until the client closes it, breaks the
// protocol, idles out, or the service closes. Install it with
// h.SetStreamHandler(clientproto.Protocol, svc.Handle).
func (s *Service) Handle(st network.Stream) {
	client := st.Conn().RemotePeer()
	if reason := s.admit(st, client); reason != "" {
		s.m.streamsRefused.WithLabelValues(reason).Inc()
		s.log.Debug("client stream refused", "peer", client, "reason", reason)
		_ = st.Reset()
		return
	}
	defer s.release(st, client)
	c := &clientStream{svc: s, st: st, client: client}
	c.own, c.authenticated = ownMailbox(st.Conn().RemotePublicKey())
	c.serve()
}

// ownMailbox derives a client's own mailbox from its libp2p key, if that
// key is Ed25519 (the key Sotto identities are).
func ownMailbox(k crypto.PubKey) (clientproto.MailboxID, bool) {
	if k == nil || k.Type() != pb.KeyType_Ed25519 {
		return clientproto.MailboxID{}, false
	}
	raw, err := k.Raw()
	if err != nil || len(raw) != 32 {
		return clientproto.MailboxID{}, false
	}
	return clientproto.OwnMailbox(raw), true
}

// clientStream is one client stream being served.
type clientStream struct {
	svc           *Service
	st            network.Stream
	client        peer.ID
	own           clientproto.MailboxID
	authenticated bool // the client's key is Ed25519

	writeMu sync.Mutex
	wbuf    []byte
	broken  bool // a write failed; the stream is reset
}

// serve reads requests and serves each in its own goroutine, at most
// MaxInFlight at a time: when that many are pending the stream is not read,
// so a client that floods it is held back by the muxer's flow control.
func (c *clientStream) serve() {
	cfg := &c.svc.cfg
	ctx, cancel := context.WithCancel(c.svc.ctx)
	var inflight sync.WaitGroup
	defer func() {
		cancel()
		inflight.Wait()
	}()
	slots := make(chan struct{}, cfg.MaxInFlight)
	r := &deadlineReader{st: c.st, idle: cfg.IdleTimeout, frame: cfg.RequestTimeout}
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			c.reset("closed")
			return
		}
		r.start()
		body, err := clientproto.ReadFrame(r, nil, clientproto.MaxRequestLength)
		if err != nil {
			<-slots
			c.readFailed(err, &inflight)
			return
		}
		req := new(clientproto.Request)
		if err := req.Decode(body); err != nil {
			if errors.Is(err, clientproto.ErrUnsupported) {
				// A newer client: answer, and keep the stream.
				<-slots
				c.svc.m.request(req.Op, clientproto.CodeUnsupported, 0)
				c.reply(&clientproto.Response{ID: req.ID, Op: req.Op, Code: clientproto.CodeUnsupported, Message: "unknown op"})
				continue
			}
			<-slots
			c.svc.logGarbage(c.client, err)
			c.reset("malformed")
			return
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { <-slots }()
			resp := c.svc.serveRequest(ctx, c, req)
			c.reply(resp)
		}()
	}
}

// readFailed ends the stream after a read error: cleanly after the client
// closed its side (pending replies are still written), by a reset otherwise.
func (c *clientStream) readFailed(err error, inflight *sync.WaitGroup) {
	switch {
	case errors.Is(err, io.EOF):
		inflight.Wait()
		_ = c.st.Close()
	case errors.Is(err, clientproto.ErrMalformed):
		c.svc.logGarbage(c.client, err)
		c.reset("malformed")
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.svc.log.Debug("client stream timed out", "peer", c.client, "err", err)
		c.reset("timeout")
	default:
		c.svc.log.Debug("client stream broken", "peer", c.client, "err", err)
		c.reset("broken")
	}
}

func (c *clientStream) reset(reason string) {
	c.svc.m.streamsReset.WithLabelValues(reason).Inc()
	_ = c.st.Reset()
}

// reply writes one response; replies of concurrent requests are written
// whole, one at a time. A write that fails or times out resets the stream.
func (c *clientStream) reply(resp *clientproto.Response) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.broken {
		return
	}
	b, err := resp.AppendFrame(c.wbuf[:0])
	if err != nil {
		c.svc.log.Error("cannot encode a reply", "op", resp.Op, "err", err)
		resp = &clientproto.Response{ID: resp.ID, Op: resp.Op, Code: clientproto.CodeInternal, Message: "reply too large"}
		if b, err = resp.AppendFrame(c.wbuf[:0]); err != nil {
			return
		}
	}
	if cap(b) <= 64<<10 {
		c.wbuf = b // keep small buffers; a document reply's goes
	}
	_ = c.st.SetWriteDeadline(time.Now().Add(c.svc.cfg.RequestTimeout))
	if _, err := c.st.Write(b); err != nil {
		c.broken = true
		c.svc.log.Debug("writing to client failed", "peer", c.client, "err", err)
		c.reset("write")
	}
}

// deadlineReader gives a stream two read deadlines: IdleTimeout until a
// frame's first byte, then RequestTimeout for the rest of it, so a client
// may be quiet for long but cannot trickle a frame.
type deadlineReader struct {
	st          network.Stream
	idle, frame time.Duration
	n           int
}

func (r *deadlineReader) start() {
	r.n = 0
	_ = r.st.SetReadDeadline(time.Now().Add(r.idle))
}

func (r *deadlineReader) Read(p []byte) (int, error) {
	n, err := r.st.Read(p)
	if r.n == 0 && n > 0 {
		_ = r.st.SetReadDeadline(time.Now().Add(r.frame))
	}
	r.n += n
	return n, err
}
