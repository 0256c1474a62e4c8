package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/interfaces"
)

// fetchRounds bounds how many storage batches one Fetch scans when every
// entry it found was unreadable.
const fetchRounds = 4

// serveRequest serves one decoded request within RequestTimeout. held is
// the request's reservation of the reply budget; it returns the reply and
// the reservation resized to it (a reply that does not fit becomes busy).
func (s *Service) serveRequest(ctx context.Context, c *clientStream, req *clientproto.Request, held int) (*clientproto.Response, int) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	resp := &clientproto.Response{ID: req.ID, Op: req.Op}
	var err error
	if !c.authenticated {
		err = fmt.Errorf("%w: client key is not Ed25519", clientproto.ErrForbidden)
	} else {
		switch req.Op {
		case clientproto.OpDocument:
			resp.Document, err = s.document(ctx, req.Epoch)
		case clientproto.OpSend:
			err = s.send(c, req)
		case clientproto.OpFetch:
			resp.Messages, err = s.fetch(ctx, c, req)
		case clientproto.OpAck:
			err = s.ack(ctx, c, req)
		case clientproto.OpRedeem:
			resp.Granted, resp.Receipt, err = s.redeem(ctx, c, req)
		}
	}
	if err != nil {
		resp = s.errorReply(c, req, err)
	}
	var ok bool
	if held, ok = s.fitReply(resp, held); !ok {
		s.log.Debug("no room for a client reply", "op", req.Op, "peer", c.client, "bytes", replyLength(resp))
		resp = busyReply(req)
	}
	s.m.request(req.Op, resp.Code, time.Since(start))
	return resp, held
}

// errorReply turns an operation's error into its reply. Internal errors
// are logged here and reach the client without their details.
func (s *Service) errorReply(c *clientStream, req *clientproto.Request, err error) *clientproto.Response {
	var unreadable *unreadableError
	if errors.As(err, &unreadable) {
		// The client needs the ID to fetch past them; it reveals nothing
		// of the provider.
		return &clientproto.Response{ID: req.ID, Op: req.Op, Code: clientproto.CodeInternal, Message: unreadable.Error()}
	}
	code := clientproto.CodeOf(err)
	switch {
	case code != clientproto.CodeInternal:
	case errors.Is(err, interfaces.ErrMalformedReply):
		// A plugin bug, not a load: it wraps ErrUnavailable, but waiting
		// does not help.
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, interfaces.ErrUnavailable):
		code = clientproto.CodeBusy
	case errors.Is(err, interfaces.ErrPaymentRequired):
		code = clientproto.CodePaymentRequired
	case errors.Is(err, interfaces.ErrInvalidArgument):
		code = clientproto.CodeBadRequest
	}
	msg := err.Error()
	if code == clientproto.CodeInternal || code == clientproto.CodeBusy {
		s.log.Warn("client request failed", "op", req.Op, "peer", c.client, "code", code, "err", err)
		msg = code.String()
	}
	return &clientproto.Response{ID: req.ID, Op: req.Op, Code: code, Message: msg}
}

func (s *Service) document(ctx context.Context, epoch uint64) ([]byte, error) {
	doc, err := s.cfg.Backend.Document(ctx, epoch)
	if err != nil {
		return nil, fmt.Errorf("document of epoch %d: %w", epoch, err)
	}
	if len(doc) > clientproto.MaxDocumentLength {
		return nil, fmt.Errorf("document of epoch %d has %d bytes", epoch, len(doc))
	}
	return doc, nil
}

// send checks a packet and hands it to the node. The packet slice is the
// Backend's to keep.
func (s *Service) send(c *clientStream, req *clientproto.Request) error {
	if len(req.Packet) != s.cfg.PacketLength {
		return fmt.Errorf("%w: packet of %d bytes, this network's are %d", clientproto.ErrBadRequest, len(req.Packet), s.cfg.PacketLength)
	}
	if !s.takePacket(c.client) {
		return fmt.Errorf("%w: no packets left; redeem a credential", clientproto.ErrPaymentRequired)
	}
	route := "inject"
	var err error
	if req.FirstHop == s.nodeID {
		err = s.cfg.Backend.Inject(req.Packet)
	} else {
		route = "forward"
		if err = s.cfg.Backend.Forward(req.FirstHop, req.Packet); err != nil && !errors.Is(err, clientproto.ErrBusy) {
			// Not a full queue: the first hop is not a mix this provider
			// forwards to.
			err = fmt.Errorf("%w: first hop refused: %v", clientproto.ErrBadRequest, err)
		}
	}
	if err != nil {
		s.grant(c.client, 1) // not accepted: not spent
		return err
	}
	s.m.packetsAccepted.WithLabelValues(route).Inc()
	return nil
}

// mailbox resolves a MailboxRef for the client of c.
func (s *Service) mailbox(c *clientStream, ref clientproto.MailboxRef) clientproto.MailboxID {
	if ref.SURB {
		return clientproto.SURBMailbox(ref.Capability)
	}
	return c.own
}

func (s *Service) fetch(ctx context.Context, c *clientStream, req *clientproto.Request) ([]clientproto.Message, error) {
	limit := req.Limit
	if limit == 0 || limit > s.cfg.FetchLimit {
		limit = s.cfg.FetchLimit
	}
	mb := s.mailbox(c, req.Mailbox)
	after := req.After
	var (
		msgs  []clientproto.Message
		size  = 2 // the message count
		bytes int
	)
	round := 0
	for ; round < fetchRounds && len(msgs) == 0; round++ {
		res, err := s.cfg.Mailboxes.FetchMailbox(ctx, &interfaces.FetchMailboxRequest{
			Mailbox: mb, After: after, Limit: limit, MaxBytes: s.cfg.FetchBytes,
		})
		if err != nil {
			return nil, fmt.Errorf("fetching mailbox: %w", err)
		}
		if res == nil {
			return nil, fmt.Errorf("fetching mailbox: %w: no response", interfaces.ErrMalformedReply)
		}
		if len(res.Entries) == 0 {
			break
		}
		var corrupt []uint64
		for _, e := range res.Entries {
			if e.ID <= after {
				// Out of order: the scan would not end, or skip messages.
				return nil, fmt.Errorf("fetching mailbox: %w: entry %d after %d", interfaces.ErrMalformedReply, e.ID, after)
			}
			after = e.ID
			sm, err := clientproto.ParseStored(e.Payload)
			ml := clientproto.MessageLength(&sm)
			if err == nil && 2+ml > clientproto.MaxFetchBytes {
				err = fmt.Errorf("stored message of %d bytes cannot be sent", len(e.Payload))
			}
			if err != nil {
				corrupt = append(corrupt, e.ID)
				continue
			}
			if len(msgs) > 0 && size+ml > s.cfg.FetchBytes {
				break // the rest comes with the next fetch
			}
			msgs = append(msgs, clientproto.Message{ID: e.ID, Expires: e.Expires, StoredMessage: sm})
			size += ml
			bytes += len(e.Payload)
			if len(msgs) == limit {
				break
			}
		}
		if len(corrupt) > 0 {
			// Left in place (they expire): a storage fault should not
			// delete what a fixed provider might still read.
			s.m.corruptEntries.Add(float64(len(corrupt)))
			s.log.Warn("skipped unreadable mailbox entries", "count", len(corrupt), "ids", corrupt)
		}
	}
	if len(msgs) == 0 && round == fetchRounds {
		// Every batch scanned was unreadable, and more may follow: an
		// empty reply would tell the client there is nothing left.
		return nil, &unreadableError{last: after}
	}
	s.m.fetchedBytes.Add(float64(bytes))
	s.m.entriesReturned.Add(float64(len(msgs)))
	return msgs, nil
}

func (s *Service) ack(ctx context.Context, c *clientStream, req *clientproto.Request) error {
	if len(req.IDs) == 0 {
		return nil
	}
	res, err := s.cfg.Mailboxes.AckMailbox(ctx, &interfaces.AckMailboxRequest{Mailbox: s.mailbox(c, req.Mailbox), IDs: req.IDs})
	if err != nil {
		return fmt.Errorf("acknowledging: %w", err)
	}
	if res == nil {
		return fmt.Errorf("acknowledging: %w: no response", interfaces.ErrMalformedReply)
	}
	return nil
}

// redeem spends a credential with the accounting plugin and adds what it
// grants to the client's allowance. A free service grants what is asked.
func (s *Service) redeem(ctx context.Context, c *clientStream, req *clientproto.Request) (uint64, []byte, error) {
	if s.cfg.Accounting == nil {
		return req.Packets, nil, nil
	}
	res, err := s.cfg.Accounting.Redeem(ctx, &interfaces.RedeemRequest{
		Epoch: req.Epoch, Gateway: interfaces.NodeID(s.nodeID), Credential: req.Credential, Packets: req.Packets,
	})
	if err != nil {
		if errors.Is(err, interfaces.ErrPaymentRequired) {
			return 0, nil, fmt.Errorf("%w: %v", clientproto.ErrPaymentRequired, err)
		}
		return 0, nil, fmt.Errorf("redeeming: %w", err)
	}
	if res == nil {
		return 0, nil, fmt.Errorf("redeeming: %w: no response", interfaces.ErrMalformedReply)
	}
	if len(res.Receipt) > clientproto.MaxReceiptLength {
		return 0, nil, fmt.Errorf("accounting receipt of %d bytes", len(res.Receipt))
	}
	s.grant(c.client, res.Granted)
	return res.Granted, res.Receipt, nil
}

// unreadableError is a Fetch that scanned fetchRounds storage batches and
// found only unreadable entries. Its text is the reply's message, which
// docs/SPEC.md ("Client protocol", Fetch) specifies.
type unreadableError struct {
	last uint64 // the last ID scanned
}

func (e *unreadableError) Error() string {
	return fmt.Sprintf("unreadable mailbox entries up to ID %d", e.last)
}
