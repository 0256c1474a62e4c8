package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
		err = refuse(clientproto.CodeForbidden, "client key is not Ed25519", nil)
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
		case clientproto.OpIssue:
			resp.Issued, err = s.issue(ctx, c, req)
		}
	}
	if err != nil {
		resp = s.errorReply(c, req, err)
	}
	var ok bool
	if held, ok = s.fitReply(c, resp, held); !ok {
		s.log.Debug("no room for a client reply", "op", req.Op, "peer", c.client, "bytes", replyLength(resp))
		resp = busyReply(req)
	}
	s.m.request(req.Op, resp.Code, time.Since(start))
	return resp, held
}

// replyError is an error whose code and reason the client reads as they
// are: the reason is written in this package, never taken from a plugin
// or the node, whose error (cause) only goes to the log.
type replyError struct {
	code   clientproto.Code
	reason string
	cause  error
}

func (e *replyError) Error() string {
	if e.cause == nil {
		return e.reason
	}
	return e.reason + ": " + e.cause.Error()
}

// Unwrap gives the code's sentinel, so clientproto.CodeOf reads the code.
func (e *replyError) Unwrap() error { return (&clientproto.Error{Code: e.code}).Unwrap() }

// refuse is a request's failure as the client will read it: code and a
// short reason (at most clientproto.MaxErrorMessageLength bytes), and the
// cause for the log.
func refuse(code clientproto.Code, reason string, cause error) error {
	return &replyError{code: code, reason: reason, cause: cause}
}

// genericReason is what a client reads for an error this package did not
// word: the code's name, and nothing of where the error came from.
func genericReason(code clientproto.Code) string { return strings.ReplaceAll(code.String(), "_", " ") }

// errorReply turns an operation's error into its reply: the code, and the
// reason when this package wrote one (refuse), else the code's name. The
// whole error, plugin and node text included, goes to the log: at Warn
// when the provider failed (internal, busy), at Debug when the client did.
func (s *Service) errorReply(c *clientStream, req *clientproto.Request, err error) *clientproto.Response {
	var unreadable *unreadableError
	if errors.As(err, &unreadable) {
		// The client needs the ID to fetch past them; it reveals nothing
		// of the provider.
		return &clientproto.Response{ID: req.ID, Op: req.Op, Code: clientproto.CodeInternal, Message: unreadable.Error()}
	}
	var code clientproto.Code
	var msg string
	var re *replyError
	if errors.As(err, &re) {
		code, msg = re.code, re.reason
	} else {
		code = codeOf(err)
		msg = genericReason(code)
	}
	if len(msg) > clientproto.MaxErrorMessageLength {
		msg = msg[:clientproto.MaxErrorMessageLength]
	}
	if code == clientproto.CodeInternal || code == clientproto.CodeBusy {
		s.log.Warn("client request failed", "op", req.Op, "peer", c.client, "code", code, "err", err)
	} else {
		s.log.Debug("client request refused", "op", req.Op, "peer", c.client, "code", code, "err", err)
	}
	return &clientproto.Response{ID: req.ID, Op: req.Op, Code: code, Message: msg}
}

// codeOf is the code of an error this package did not word: that of the
// client protocol sentinel it wraps (the node's errors), else what the
// plugin sentinel means to a client.
func codeOf(err error) clientproto.Code {
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
	return code
}

func (s *Service) document(ctx context.Context, epoch uint64) ([]byte, error) {
	doc, err := s.cfg.Backend.Document(ctx, epoch)
	if err != nil {
		if errors.Is(err, clientproto.ErrNoDocument) {
			return nil, refuse(clientproto.CodeNotFound, fmt.Sprintf("no document for epoch %d", epoch), err)
		}
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
		return refuse(clientproto.CodeBadRequest, fmt.Sprintf("packet of %d bytes, this network's are %d", len(req.Packet), s.cfg.PacketLength), nil)
	}
	if scope := s.sendRate.take(c, time.Now()); scope != "" {
		s.m.rateLimited.WithLabelValues(scope).Inc()
		return refuse(clientproto.CodeBusy, "send rate limit ("+scope+"); slow down", nil)
	}
	if !s.takePacket(c.client) {
		s.sendRate.give(c)
		return refuse(clientproto.CodePaymentRequired, "no packets left; redeem a credential", nil)
	}
	route := "inject"
	var err error
	if req.FirstHop == s.nodeID {
		if err = s.cfg.Backend.Inject(req.Packet); err != nil {
			var reason *clientproto.Error
			if errors.As(err, &reason) && reason.Code == clientproto.CodeBusy && reason.Message != "" {
				// The node worded it for clients (storage unavailable).
				err = refuse(clientproto.CodeBusy, reason.Message, err)
			} else if clientproto.CodeOf(err) == clientproto.CodeBusy {
				err = refuse(clientproto.CodeBusy, "busy", err)
			}
		}
	} else {
		route = "forward"
		if err = s.cfg.Backend.Forward(req.FirstHop, req.Packet); err != nil {
			if clientproto.CodeOf(err) == clientproto.CodeBusy {
				err = refuse(clientproto.CodeBusy, "busy", err)
			} else {
				// Not a full queue: the first hop is not a mix this
				// provider forwards to.
				err = refuse(clientproto.CodeBadRequest, "first hop is not a layer-0 mix of the current document", err)
			}
		}
	}
	if err != nil {
		s.grant(c.client, 1) // not accepted: not spent
		s.sendRate.give(c)
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
// grants to the client's allowance. The epoch must be the current one or
// a neighbour (clock skew, a boundary crossed in flight); any other is
// refused before the plugin sees it. The plugin learns the client's key.
// A free service grants what is asked.
func (s *Service) redeem(ctx context.Context, c *clientStream, req *clientproto.Request) (uint64, []byte, error) {
	if err := s.checkEpoch(req.Epoch); err != nil {
		return 0, nil, err
	}
	if s.cfg.Accounting == nil {
		return req.Packets, nil, nil
	}
	res, err := s.cfg.Accounting.Redeem(ctx, &interfaces.RedeemRequest{
		Epoch: req.Epoch, Gateway: interfaces.NodeID(s.nodeID), Credential: req.Credential, Packets: req.Packets, Client: c.key,
	})
	switch {
	case errors.Is(err, interfaces.ErrDoubleSpend):
		return 0, nil, refuse(clientproto.CodePaymentRequired, "credential already spent", err)
	case errors.Is(err, interfaces.ErrPaymentRequired):
		return 0, nil, refuse(clientproto.CodePaymentRequired, "credential refused", err)
	case errors.Is(err, interfaces.ErrInvalidArgument):
		return 0, nil, refuse(clientproto.CodeBadRequest, "malformed credential", err)
	case err != nil:
		return 0, nil, fmt.Errorf("redeeming: %w", err)
	case res == nil:
		return 0, nil, fmt.Errorf("redeeming: %w: no response", interfaces.ErrMalformedReply)
	case len(res.Receipt) > clientproto.MaxReceiptLength:
		return 0, nil, fmt.Errorf("accounting receipt of %d bytes", len(res.Receipt))
	}
	s.grant(c.client, res.Granted)
	s.persistGrant(ctx, c.client) // before the client learns of it
	return res.Granted, res.Receipt, nil
}

// checkEpoch refuses an accounting request for an epoch other than the
// provider's current one or a neighbour.
func (s *Service) checkEpoch(e uint64) error {
	if now := s.cfg.CurrentEpoch; now != nil {
		if cur := now(); e+1 < cur || e > cur+1 {
			return refuse(clientproto.CodeBadRequest,
				fmt.Sprintf("epoch %d is not the provider's current epoch %d or a neighbour", e, cur), nil)
		}
	}
	return nil
}

// issue runs one issuance step of the accounting design for the client
// (blind-signing its blinded tokens, say), with the bounds and errors of
// redeem: the epoch must be the current one or a neighbour, a refusal is
// payment required, a malformed request a bad request. The plugin learns
// the client's key. A free service has nothing to issue: an empty reply.
func (s *Service) issue(ctx context.Context, c *clientStream, req *clientproto.Request) ([]byte, error) {
	if err := s.checkEpoch(req.Epoch); err != nil {
		return nil, err
	}
	if s.cfg.Accounting == nil {
		return nil, nil
	}
	res, err := s.cfg.Accounting.Issue(ctx, &interfaces.IssueRequest{Epoch: req.Epoch, Request: req.Issuance, Client: c.key})
	switch {
	case errors.Is(err, interfaces.ErrPaymentRequired):
		return nil, refuse(clientproto.CodePaymentRequired, "issuance refused", err)
	case errors.Is(err, interfaces.ErrInvalidArgument):
		return nil, refuse(clientproto.CodeBadRequest, "malformed issuance request", err)
	case err != nil:
		return nil, fmt.Errorf("issuing: %w", err)
	case res == nil:
		return nil, fmt.Errorf("issuing: %w: no response", interfaces.ErrMalformedReply)
	case len(res.Response) > clientproto.MaxIssueReplyLength:
		return nil, fmt.Errorf("accounting issuance reply of %d bytes", len(res.Response))
	}
	return res.Response, nil
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
