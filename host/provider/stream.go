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
	ip := ipKey(st.Conn().RemoteMultiaddr())
	if reason := s.admit(st, client, ip); reason != "" {
		s.m.streamsRefused.WithLabelValues(reason).Inc()
		s.log.Debug("client stream refused", "peer", client, "reason", reason)
		_ = st.Reset()
		return
	}
	defer s.release(st, client, ip)
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
	broken  bool // a write failed; the stream is reset
}

// serve reads requests and serves each in its own goroutine, at most
// MaxInFlight at a time: when that many are pending the stream is not read,
// so a client that floods it is held back by the muxer's flow control.
// Nor is it read while a reply is being written to it, so a client that
// does not read its replies cannot have more requests served meanwhile.
// A request that finds the service's MaxRequests or ReplyBytes exhausted
// is answered busy by the reader itself, without a goroutine.
func (c *clientStream) serve() {
	s := c.svc
	cfg := &s.cfg
	ctx, cancel := context.WithCancel(s.ctx)
	var inflight sync.WaitGroup
	defer func() {
		cancel()
		inflight.Wait()
	}()
	slots := make(chan struct{}, cfg.MaxInFlight)
	r := &deadlineReader{st: c.st, idle: min(cfg.FirstRequestTimeout, cfg.IdleTimeout), frame: cfg.RequestTimeout}
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			c.reset("closed")
			return
		}
		if !c.writable() {
			return // reset by the failed write
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
			<-slots
			if errors.Is(err, clientproto.ErrUnsupported) {
				// A newer client: answer, and keep the stream.
				r.idle = cfg.IdleTimeout
				s.m.request(req.Op, clientproto.CodeUnsupported, 0)
				c.reply(&clientproto.Response{ID: req.ID, Op: req.Op, Code: clientproto.CodeUnsupported, Message: "unknown op"}, 0)
				continue
			}
			s.logGarbage(c.client, err)
			c.reset("malformed")
			return
		}
		r.idle = cfg.IdleTimeout
		reserved, ok := s.startRequest(req.Op)
		if !ok {
			<-slots
			s.m.request(req.Op, clientproto.CodeBusy, 0)
			c.reply(busyReply(req), 0)
			continue
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { <-slots }()
			defer s.endRequest()
			resp, held := s.serveRequest(ctx, c, req, reserved)
			c.reply(resp, held)
		}()
	}
}

func busyReply(req *clientproto.Request) *clientproto.Response {
	return &clientproto.Response{ID: req.ID, Op: req.Op, Code: clientproto.CodeBusy, Message: "busy"}
}

// writable waits until no reply is being written to the stream, and
// reports whether the stream still works.
func (c *clientStream) writable() bool {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return !c.broken
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

// reply writes one response and then gives back the held bytes of the
// reply budget; replies of concurrent requests are written whole, one at
// a time. The reply is encoded before waiting for the stream, so what
// waits is its frame alone. A write that fails or times out resets the
// stream.
func (c *clientStream) reply(resp *clientproto.Response, held int) {
	s := c.svc
	b, err := resp.AppendFrame(make([]byte, 0, replyLength(resp)))
	if err != nil {
		s.log.Error("cannot encode a reply", "op", resp.Op, "err", err)
		resp = &clientproto.Response{ID: resp.ID, Op: resp.Op, Code: clientproto.CodeInternal, Message: "reply too large"}
		if b, err = resp.AppendFrame(nil); err != nil {
			s.replies.give(held)
			return
		}
	}
	if len(b) < held {
		s.replies.give(held - len(b))
		held = len(b)
	}
	defer s.replies.give(held)
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.broken {
		return
	}
	_ = c.st.SetWriteDeadline(time.Now().Add(s.cfg.RequestTimeout))
	if _, err := c.st.Write(b); err != nil {
		c.broken = true
		s.log.Debug("writing to client failed", "peer", c.client, "err", err)
		c.reset("write")
	}
}

// deadlineReader gives a stream two read deadlines: idle until a frame's
// first byte (FirstRequestTimeout before the stream's first request,
// IdleTimeout after it), then RequestTimeout for the rest of it, so a
// client may be quiet for long but cannot trickle a frame.
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
