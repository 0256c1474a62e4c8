package provider

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	pb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces"
)

// Handle serves one client stream until the client closes it, breaks the
// protocol, idles out, is evicted to make room for a newcomer, or the
// service closes. Install it with h.SetStreamHandler(clientproto.Protocol,
// svc.Handle).
func (s *Service) Handle(st network.Stream) {
	c := &clientStream{svc: s, st: st, client: st.Conn().RemotePeer(), ip: ipKey(st.Conn().RemoteMultiaddr())}
	c.key, c.authenticated = clientKey(st.Conn().RemotePublicKey())
	if c.authenticated {
		c.own = clientproto.OwnMailbox(c.key[:])
	}
	c.admitted = time.Now().UnixNano()
	c.active.Store(c.admitted)
	evicted, reason := s.admit(c)
	for _, v := range evicted {
		s.log.Debug("client stream evicted for a newcomer", "peer", v.client, "newcomer", c.client)
		_ = v.st.Reset()
	}
	if reason != "" {
		s.m.streamsRefused.WithLabelValues(reason).Inc()
		s.log.Debug("client stream refused", "peer", c.client, "reason", reason)
		_ = st.Reset()
		return
	}
	defer s.release(c)
	c.serve()
}

// clientKey is a client's Ed25519 public key from its libp2p key, if it
// is one (the key Sotto identities are).
func clientKey(k crypto.PubKey) (interfaces.ClientKey, bool) {
	var key interfaces.ClientKey
	if k == nil || k.Type() != pb.KeyType_Ed25519 {
		return key, false
	}
	raw, err := k.Raw()
	if err != nil || len(raw) != len(key) {
		return key, false
	}
	copy(key[:], raw)
	return key, true
}

// clientStream is one client stream being served.
type clientStream struct {
	svc           *Service
	st            network.Stream
	client        peer.ID
	ip            netip.Prefix // ipKey of the remote address; zero if none
	key           interfaces.ClientKey
	own           clientproto.MailboxID
	authenticated bool // the client's key is Ed25519

	registered bool // in the service's tables (under svc.mu)
	// busy counts the requests read and not yet answered; active is when
	// the stream last started or answered one (UnixNano). A stream with
	// busy 0 is idle, and may be evicted for a newcomer.
	busy    atomic.Int32
	active  atomic.Int64
	evicted atomic.Bool
	// admitted is when the stream was admitted (UnixNano); asked is set
	// once its first request has been read. A stream younger than
	// newStreamGrace that has asked nothing yet is not evicted (victim):
	// its client is about to ask, and evicting it would let an attacker's
	// newcomers cut an honest client before it is ever served.
	admitted int64
	asked    atomic.Bool

	writeMu sync.Mutex
	broken  bool // a write failed; the stream is reset
}

func (c *clientStream) touch() { c.active.Store(time.Now().UnixNano()) }

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
	for first := true; ; first = false {
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
		c.busy.Add(1)
		c.asked.Store(true)
		c.touch()
		req := new(clientproto.Request)
		if err := req.Decode(body); err != nil {
			<-slots
			var refused *clientproto.Error
			if errors.As(err, &refused) {
				// An unknown op (a newer client) or a field out of range
				// in a body of the right length: answer before looking at
				// who asks, and keep the stream (docs/SPEC.md, "Errors
				// and resets").
				r.idle = cfg.IdleTimeout
				s.m.request(req.Op, refused.Code, 0)
				s.log.Debug("client request refused", "op", req.Op, "peer", c.client, "code", refused.Code, "reason", refused.Message)
				c.reply(&clientproto.Response{ID: req.ID, Op: req.Op, Code: refused.Code, Message: refused.Message}, 0)
				continue
			}
			c.busy.Add(-1)
			s.logGarbage(c.client, err)
			c.reset("malformed")
			return
		}
		r.idle = cfg.IdleTimeout
		if req.Op == clientproto.OpSubscribe || req.Op == clientproto.OpPulse {
			// The downstream (downstream.go): a Subscribe that opens the
			// stream turns it into one; anything else is refused.
			<-slots
			if req.Op == clientproto.OpSubscribe && first {
				if c.subscribe(ctx, r, req) {
					return
				}
				continue
			}
			s.m.request(req.Op, clientproto.CodeBadRequest, 0)
			c.reply(&clientproto.Response{ID: req.ID, Op: req.Op, Code: clientproto.CodeBadRequest,
				Message: "subscribe opens a stream; pulses go on a downstream"}, 0)
			continue
		}
		reserved, ok := s.startRequest(c, req.Op)
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
	case c.evicted.Load():
		// Reset by the service for a newcomer, and counted as evicted.
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
// waits is its frame alone. It must be written within RequestTimeout of
// being ready, the wait behind other replies included, so a client that
// reads slowly holds its share of the budget no longer than that: a write
// that fails or misses the deadline resets the stream. Every reply ends
// one request the stream counts as busy.
func (c *clientStream) reply(resp *clientproto.Response, held int) {
	s := c.svc
	ready := time.Now()
	defer func() {
		c.touch()
		c.busy.Add(-1)
	}()
	b, err := resp.AppendFrame(make([]byte, 0, replyLength(resp)))
	if err != nil {
		s.log.Error("cannot encode a reply", "op", resp.Op, "err", err)
		resp = &clientproto.Response{ID: resp.ID, Op: resp.Op, Code: clientproto.CodeInternal, Message: "reply too large"}
		if b, err = resp.AppendFrame(nil); err != nil {
			s.replies.resize(c, held, 0)
			return
		}
	}
	if len(b) < held {
		s.replies.resize(c, held, len(b))
		held = len(b)
	}
	defer s.replies.resize(c, held, 0)
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.broken {
		return
	}
	deadline := ready.Add(s.cfg.RequestTimeout)
	if !time.Now().Before(deadline) {
		c.broken = true
		s.log.Debug("client reply not written in time", "peer", c.client)
		c.reset("write")
		return
	}
	_ = c.st.SetWriteDeadline(deadline)
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
