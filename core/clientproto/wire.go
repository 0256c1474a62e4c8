package clientproto

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sottonet/sotto/core/pkidoc"
)

// Wire format of /sotto/client/1.0.0 (docs/SPEC.md, "Client protocol").
//
// A client opens one long-lived stream and writes request frames; the
// provider answers each with one response frame carrying the same request
// ID, in any order, so several requests can be outstanding. A frame is
//
//	length (4 bytes, big-endian) | body (length bytes)
//
// A request body is op (1) | request ID (4) | fields of the op; a response
// body is op (1) | request ID (4) | code (1) | fields of the op (code OK) or
// an error message (any other code). All integers are big-endian.

// Op names an operation.
type Op uint8

// Operations. Values are part of the wire format; never renumber.
const (
	OpDocument Op = 1 // epoch (or CurrentEpoch) → canonical PKI document
	OpSend     Op = 2 // first hop, packet → ok
	OpFetch    Op = 3 // mailbox, after, limit → messages
	OpAck      Op = 4 // mailbox, IDs → ok
	OpRedeem   Op = 5 // epoch, packets, credential → granted, receipt
	OpIssue    Op = 6 // epoch, issuance request → issuance reply
)

var opNames = [...]string{
	OpDocument:  "document",
	OpSend:      "send",
	OpFetch:     "fetch",
	OpAck:       "ack",
	OpRedeem:    "redeem",
	OpIssue:     "issue",
	OpSubscribe: "subscribe",
	OpPulse:     "pulse",
}

// String is the op's stable name (used as a metric label).
func (o Op) String() string {
	if o != 0 && int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return fmt.Sprintf("op_%d", uint8(o))
}

func (o Op) known() bool { return o >= OpDocument && o <= OpIssue }

// CurrentEpoch, as a Document request's epoch, asks for the document of the
// provider's current epoch: how a client that does not know the network's
// epoch clock yet learns it (the document states it).
const CurrentEpoch = ^uint64(0)

// Limits of the protocol. A decoder refuses anything larger.
const (
	// FrameHeaderLength is the length prefix of every frame.
	FrameHeaderLength = 4
	// MaxPacketLength bounds a Sphinx packet in a Send (the network's
	// geometry fixes the exact size; 3130 bytes by default).
	MaxPacketLength = 16 << 10
	// MaxCredentialLength bounds a Redeem credential (the same as
	// interfaces.MaxCredentialLen).
	MaxCredentialLength = 16 << 10
	// MaxReceiptLength bounds a Redeem receipt.
	MaxReceiptLength = 16 << 10
	// MaxIssueLength bounds an Issue request's design-specific bytes (the
	// same as interfaces.MaxCredentialLen) and MaxIssueReplyLength the
	// reply's.
	MaxIssueLength      = 16 << 10
	MaxIssueReplyLength = 16 << 10
	// MaxFetchLimit bounds the messages of one Fetch reply.
	MaxFetchLimit = 1024
	// MaxAckIDs bounds the IDs of one Ack.
	MaxAckIDs = 1024
	// MaxFetchBytes bounds the fields of a Fetch reply (count and
	// messages). A provider's own byte budget is usually smaller.
	MaxFetchBytes = 1 << 20
	// MaxDocumentLength bounds a document in a reply: the largest the PKI
	// encoding allows (docs/SPEC.md, PKI, Encodings), the longest fixed
	// part and MaxDocumentNodes descriptors of MaxDescriptorSize bytes,
	// each with its 2-byte length. It is at least pkidoc.MaxDocumentSize.
	MaxDocumentLength = maxDocumentHeader + pkidoc.MaxDocumentNodes*(2+pkidoc.MaxDescriptorSize)

	// maxDocumentHeader is a document's fixed part with the longest
	// network name: version, network (length and name), epoch, hops,
	// payload length, layers, five rates, period, genesis, grace, the
	// downstream's interval and slots, count.
	maxDocumentHeader = 1 + 1 + pkidoc.MaxNetworkLen + 8 + 1 + 4 + 1 + 5*8 + 3*8 + 8 + 2 + 2

	requestHeaderLength  = 1 + 4
	responseHeaderLength = 1 + 4 + 1
	mailboxRefLength     = 1 + 16
	// messageHeaderLength is the fixed part of a message in a Fetch reply:
	// ID, expiry, stored length.
	messageHeaderLength = 8 + 8 + 4

	// MaxRequestLength bounds a request body (a Send is the largest).
	MaxRequestLength = requestHeaderLength + 32 + MaxPacketLength
	// MaxResponseLength bounds a response body (a document is the largest).
	MaxResponseLength = responseHeaderLength + MaxDocumentLength
)

// MailboxRef encoding: kind (1 byte: 0 own, 1 SURB) | capability (16 bytes,
// all zero for the own mailbox).
const (
	refOwn  = 0
	refSURB = 1
)

// Request is one request. Which fields are used depends on Op; the others
// are ignored when encoding and zero after decoding. Decoded slices alias
// the frame body.
type Request struct {
	ID uint32
	Op Op

	// Epoch: OpDocument, OpRedeem, OpIssue.
	Epoch uint64
	// FirstHop and Packet: OpSend.
	FirstHop [32]byte
	Packet   []byte
	// Mailbox: OpFetch, OpAck.
	Mailbox MailboxRef
	// After and Limit: OpFetch (Limit 0: the provider's default).
	After uint64
	Limit int
	// IDs: OpAck.
	IDs []uint64
	// Packets (asked for) and Credential: OpRedeem.
	Packets    uint64
	Credential []byte
	// Issuance (the accounting design's request bytes): OpIssue.
	Issuance []byte
	// Cursors: OpSubscribe (the mailboxes, one own). Seq, Acks, AckSlots
	// (the fixed number of ack entries, at least len(Acks)) and Changes:
	// OpPulse. See downstream.go.
	Cursors  []Cursor
	Seq      uint64
	Acks     []EntryAck
	AckSlots int
	Changes  []Cursor
}

// AppendFrame appends r as a frame (length prefix and body) to b. It
// refuses fields over the protocol's limits.
func (r *Request) AppendFrame(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, byte(r.Op))
	b = binary.BigEndian.AppendUint32(b, r.ID)
	switch r.Op {
	case OpDocument:
		b = binary.BigEndian.AppendUint64(b, r.Epoch)
	case OpSend:
		if len(r.Packet) == 0 || len(r.Packet) > MaxPacketLength {
			return b[:start], fmt.Errorf("%w: packet of %d bytes (1 to %d)", ErrMalformed, len(r.Packet), MaxPacketLength)
		}
		b = append(b, r.FirstHop[:]...)
		b = append(b, r.Packet...)
	case OpFetch:
		if r.Limit < 0 || r.Limit > MaxFetchLimit {
			return b[:start], fmt.Errorf("%w: fetch limit %d (0 to %d)", ErrMalformed, r.Limit, MaxFetchLimit)
		}
		b = appendRef(b, r.Mailbox)
		b = binary.BigEndian.AppendUint64(b, r.After)
		b = binary.BigEndian.AppendUint16(b, uint16(r.Limit))
	case OpAck:
		if len(r.IDs) > MaxAckIDs {
			return b[:start], fmt.Errorf("%w: %d IDs in one ack (at most %d)", ErrMalformed, len(r.IDs), MaxAckIDs)
		}
		b = appendRef(b, r.Mailbox)
		b = binary.BigEndian.AppendUint16(b, uint16(len(r.IDs)))
		for _, id := range r.IDs {
			b = binary.BigEndian.AppendUint64(b, id)
		}
	case OpRedeem:
		if len(r.Credential) > MaxCredentialLength {
			return b[:start], fmt.Errorf("%w: credential of %d bytes (at most %d)", ErrMalformed, len(r.Credential), MaxCredentialLength)
		}
		b = binary.BigEndian.AppendUint64(b, r.Epoch)
		b = binary.BigEndian.AppendUint64(b, r.Packets)
		b = append(b, r.Credential...)
	case OpIssue:
		if len(r.Issuance) > MaxIssueLength {
			return b[:start], fmt.Errorf("%w: issuance request of %d bytes (at most %d)", ErrMalformed, len(r.Issuance), MaxIssueLength)
		}
		b = binary.BigEndian.AppendUint64(b, r.Epoch)
		b = append(b, r.Issuance...)
	case OpSubscribe, OpPulse:
		var err error
		if b, err = r.appendDownstream(b); err != nil {
			return b[:start], err
		}
	default:
		return b[:start], fmt.Errorf("%w: cannot encode %s", ErrUnsupported, r.Op)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-FrameHeaderLength))
	return b, nil
}

// Decode parses a request body (a frame without its length prefix) into r.
//
// A body whose length its op's fields do not give (or shorter than the
// header, or over MaxRequestLength) is malformed: the error wraps
// ErrMalformed, and a provider resets the stream. A body of the right
// length that a provider must still refuse gets an *Error carrying the
// code to answer with, and r's ID and Op are set for the reply: an op this
// version does not know (CodeUnsupported), or a field outside the
// protocol's range (CodeBadRequest: an empty packet, a Fetch limit over
// MaxFetchLimit, more than MaxAckIDs IDs, a credential over
// MaxCredentialLength, a mailbox kind other than 0 or 1, an own mailbox
// with a non-zero capability). docs/SPEC.md ("Client protocol", "Errors
// and resets") states the same rule.
func (r *Request) Decode(body []byte) error {
	*r = Request{}
	if len(body) < requestHeaderLength {
		return fmt.Errorf("%w: request of %d bytes", ErrMalformed, len(body))
	}
	if len(body) > MaxRequestLength {
		return fmt.Errorf("%w: request of %d bytes (at most %d)", ErrMalformed, len(body), MaxRequestLength)
	}
	r.Op = Op(body[0])
	r.ID = binary.BigEndian.Uint32(body[1:])
	p := body[requestHeaderLength:]
	switch r.Op {
	case OpDocument:
		if len(p) != 8 {
			return fmt.Errorf("%w: document request of %d bytes", ErrMalformed, len(p))
		}
		r.Epoch = binary.BigEndian.Uint64(p)
	case OpSend:
		if len(p) < 32 {
			return fmt.Errorf("%w: send request of %d bytes", ErrMalformed, len(p))
		}
		copy(r.FirstHop[:], p)
		r.Packet = p[32:]
		if len(r.Packet) == 0 {
			// The frame limit already bounds it from above.
			return badRequest("empty packet")
		}
	case OpFetch:
		if len(p) != mailboxRefLength+8+2 {
			return fmt.Errorf("%w: fetch request of %d bytes", ErrMalformed, len(p))
		}
		var err error
		if r.Mailbox, err = parseRef(p); err != nil {
			return err
		}
		p = p[mailboxRefLength:]
		r.After = binary.BigEndian.Uint64(p)
		r.Limit = int(binary.BigEndian.Uint16(p[8:]))
		if r.Limit > MaxFetchLimit {
			return badRequest(fmt.Sprintf("fetch limit %d, at most %d", r.Limit, MaxFetchLimit))
		}
	case OpAck:
		if len(p) < mailboxRefLength+2 {
			return fmt.Errorf("%w: ack request of %d bytes", ErrMalformed, len(p))
		}
		n := int(binary.BigEndian.Uint16(p[mailboxRefLength:]))
		if len(p)-mailboxRefLength-2 != 8*n {
			return fmt.Errorf("%w: ack of %d IDs in %d bytes", ErrMalformed, n, len(p)-mailboxRefLength-2)
		}
		var err error
		if r.Mailbox, err = parseRef(p); err != nil {
			return err
		}
		if n > MaxAckIDs {
			return badRequest(fmt.Sprintf("%d IDs in one ack, at most %d", n, MaxAckIDs))
		}
		p = p[mailboxRefLength+2:]
		if n > 0 {
			r.IDs = make([]uint64, n)
			for i := range r.IDs {
				r.IDs[i] = binary.BigEndian.Uint64(p[8*i:])
			}
		}
	case OpRedeem:
		if len(p) < 16 {
			return fmt.Errorf("%w: redeem request of %d bytes", ErrMalformed, len(p))
		}
		r.Epoch = binary.BigEndian.Uint64(p)
		r.Packets = binary.BigEndian.Uint64(p[8:])
		r.Credential = p[16:]
		if len(r.Credential) > MaxCredentialLength {
			// Up to 16 bytes more fit in a frame of MaxRequestLength.
			return badRequest(fmt.Sprintf("credential of %d bytes, at most %d", len(r.Credential), MaxCredentialLength))
		}
	case OpIssue:
		if len(p) < 8 {
			return fmt.Errorf("%w: issue request of %d bytes", ErrMalformed, len(p))
		}
		r.Epoch = binary.BigEndian.Uint64(p)
		r.Issuance = p[8:]
		if len(r.Issuance) > MaxIssueLength {
			return badRequest(fmt.Sprintf("issuance request of %d bytes, at most %d", len(r.Issuance), MaxIssueLength))
		}
	case OpSubscribe, OpPulse:
		return r.decodeDownstream(p)
	default:
		return &Error{Code: CodeUnsupported, Message: "unknown op"}
	}
	return nil
}

// badRequest is a well-formed request with a field out of the protocol's
// range, as the reply a provider gives it.
func badRequest(reason string) error {
	return &Error{Code: CodeBadRequest, Message: reason}
}

func appendRef(b []byte, m MailboxRef) []byte {
	if !m.SURB {
		return append(b, make([]byte, mailboxRefLength)...)
	}
	b = append(b, refSURB)
	return append(b, m.Capability[:]...)
}

func parseRef(p []byte) (MailboxRef, error) {
	var m MailboxRef
	switch p[0] {
	case refOwn:
		// Refused, not ignored: the bytes stay free for a later meaning.
		for _, c := range p[1:mailboxRefLength] {
			if c != 0 {
				return m, badRequest("own mailbox with a non-zero capability")
			}
		}
	case refSURB:
		m.SURB = true
		copy(m.Capability[:], p[1:mailboxRefLength])
	default:
		return m, badRequest(fmt.Sprintf("mailbox kind %d", p[0]))
	}
	return m, nil
}

// Response is one response. Code CodeOK carries the op's result fields;
// any other code carries only Message. Decoded slices alias the body.
type Response struct {
	ID   uint32
	Op   Op
	Code Code
	// Message explains an error code (UTF-8, at most
	// MaxErrorMessageLength bytes; longer text is cut when encoding).
	Message string

	// Document: OpDocument.
	Document []byte
	// Messages: OpFetch.
	Messages []Message
	// Granted and Receipt: OpRedeem.
	Granted uint64
	Receipt []byte
	// Issued (the accounting design's reply bytes): OpIssue.
	Issued []byte
	// Push: OpSubscribe (one push frame; see downstream.go).
	Push *Push
}

// Err is nil for CodeOK, else an *Error carrying the code and message.
func (r *Response) Err() error {
	if r.Code == CodeOK {
		return nil
	}
	return &Error{Code: r.Code, Message: r.Message}
}

// FetchReplyLength is the length of the fields of a Fetch reply holding
// msgs; a provider keeps it at most MaxFetchBytes.
func FetchReplyLength(msgs []Message) int {
	n := 2
	for i := range msgs {
		n += MessageLength(&msgs[i].StoredMessage)
	}
	return n
}

// MessageLength is what one message adds to a Fetch reply.
func MessageLength(m *StoredMessage) int {
	n := messageHeaderLength + 1 + len(m.Payload)
	if m.Reply {
		n += len(m.SURBID)
	}
	return n
}

// AppendFrame appends r as a frame to b. It refuses results over the
// protocol's limits.
func (r *Response) AppendFrame(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, byte(r.Op))
	b = binary.BigEndian.AppendUint32(b, r.ID)
	b = append(b, byte(r.Code))
	if r.Code != CodeOK {
		b = append(b, truncateUTF8(r.Message, MaxErrorMessageLength)...)
	} else {
		switch r.Op {
		case OpDocument:
			if len(r.Document) > MaxDocumentLength {
				return b[:start], fmt.Errorf("%w: document of %d bytes (at most %d)", ErrMalformed, len(r.Document), MaxDocumentLength)
			}
			b = append(b, r.Document...)
		case OpSend, OpAck:
		case OpFetch:
			if len(r.Messages) > MaxFetchLimit {
				return b[:start], fmt.Errorf("%w: %d messages in one reply (at most %d)", ErrMalformed, len(r.Messages), MaxFetchLimit)
			}
			if n := FetchReplyLength(r.Messages); n > MaxFetchBytes {
				return b[:start], fmt.Errorf("%w: fetch reply of %d bytes (at most %d)", ErrMalformed, n, MaxFetchBytes)
			}
			b = binary.BigEndian.AppendUint16(b, uint16(len(r.Messages)))
			for i := range r.Messages {
				m := &r.Messages[i]
				b = binary.BigEndian.AppendUint64(b, m.ID)
				b = binary.BigEndian.AppendUint64(b, uint64(m.Expires.UnixMilli()))
				b = binary.BigEndian.AppendUint32(b, uint32(MessageLength(&m.StoredMessage)-messageHeaderLength))
				b = m.StoredMessage.AppendTo(b)
			}
		case OpRedeem:
			if len(r.Receipt) > MaxReceiptLength {
				return b[:start], fmt.Errorf("%w: receipt of %d bytes (at most %d)", ErrMalformed, len(r.Receipt), MaxReceiptLength)
			}
			b = binary.BigEndian.AppendUint64(b, r.Granted)
			b = append(b, r.Receipt...)
		case OpIssue:
			if len(r.Issued) > MaxIssueReplyLength {
				return b[:start], fmt.Errorf("%w: issuance reply of %d bytes (at most %d)", ErrMalformed, len(r.Issued), MaxIssueReplyLength)
			}
			b = append(b, r.Issued...)
		case OpSubscribe:
			var err error
			if b, err = r.appendPush(b); err != nil {
				return b[:start], err
			}
		default:
			return b[:start], fmt.Errorf("%w: cannot encode %s", ErrUnsupported, r.Op)
		}
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-FrameHeaderLength))
	return b, nil
}

// Decode parses a response body into r. Errors wrap ErrMalformed.
func (r *Response) Decode(body []byte) error {
	*r = Response{}
	if len(body) < responseHeaderLength {
		return fmt.Errorf("%w: response of %d bytes", ErrMalformed, len(body))
	}
	if len(body) > MaxResponseLength {
		return fmt.Errorf("%w: response of %d bytes (at most %d)", ErrMalformed, len(body), MaxResponseLength)
	}
	r.Op = Op(body[0])
	r.ID = binary.BigEndian.Uint32(body[1:])
	r.Code = Code(body[5])
	p := body[responseHeaderLength:]
	if r.Code != CodeOK {
		if len(p) > MaxErrorMessageLength || !utf8.Valid(p) {
			return fmt.Errorf("%w: error message of %d bytes", ErrMalformed, len(p))
		}
		r.Message = string(p)
		return nil
	}
	switch r.Op {
	case OpDocument:
		r.Document = p
	case OpSend, OpAck:
		if len(p) != 0 {
			return fmt.Errorf("%w: %s reply of %d bytes", ErrMalformed, r.Op, len(p))
		}
	case OpFetch:
		return r.decodeMessages(p)
	case OpRedeem:
		if len(p) < 8 || len(p) > 8+MaxReceiptLength {
			return fmt.Errorf("%w: redeem reply of %d bytes", ErrMalformed, len(p))
		}
		r.Granted = binary.BigEndian.Uint64(p)
		r.Receipt = p[8:]
	case OpIssue:
		if len(p) > MaxIssueReplyLength {
			return fmt.Errorf("%w: issue reply of %d bytes", ErrMalformed, len(p))
		}
		r.Issued = p
	case OpSubscribe:
		return r.decodePush(p)
	default:
		return fmt.Errorf("%w: reply to op %d", ErrMalformed, r.Op)
	}
	return nil
}

func (r *Response) decodeMessages(p []byte) error {
	if len(p) < 2 || len(p) > MaxFetchBytes {
		return fmt.Errorf("%w: fetch reply of %d bytes", ErrMalformed, len(p))
	}
	n := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	// Every message takes at least messageHeaderLength+1 bytes, so the
	// count cannot make us allocate more than the body justifies.
	if n > MaxFetchLimit || n*(messageHeaderLength+1) > len(p) {
		return fmt.Errorf("%w: %d messages in %d bytes", ErrMalformed, n, len(p))
	}
	if n == 0 {
		if len(p) != 0 {
			return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(p))
		}
		return nil
	}
	r.Messages = make([]Message, n)
	for i := range r.Messages {
		if len(p) < messageHeaderLength {
			return fmt.Errorf("%w: message %d cut short", ErrMalformed, i)
		}
		m := &r.Messages[i]
		m.ID = binary.BigEndian.Uint64(p)
		m.Expires = time.UnixMilli(int64(binary.BigEndian.Uint64(p[8:])))
		l := binary.BigEndian.Uint32(p[16:])
		p = p[messageHeaderLength:]
		if uint64(l) > uint64(len(p)) {
			return fmt.Errorf("%w: message %d of %d bytes, %d left", ErrMalformed, i, l, len(p))
		}
		sm, err := ParseStored(p[:l])
		if err != nil {
			return fmt.Errorf("%w: message %d: %w", ErrMalformed, i, err)
		}
		m.StoredMessage = sm
		p = p[l:]
	}
	if len(p) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(p))
	}
	return nil
}

// truncateUTF8 makes s valid UTF-8 of at most n bytes, cutting at a rune
// boundary.
func truncateUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// ReadFrame reads one frame from r and returns its body, refusing (with an
// error wrapping ErrMalformed) a length over max. The body reuses buf when
// it is large enough; otherwise memory grows with the bytes that actually
// arrive, so a peer announcing a large frame and sending nothing costs
// little. io.EOF means the stream ended cleanly between frames.
func ReadFrame(r io.Reader, buf []byte, max int) ([]byte, error) {
	var h [FrameHeaderLength]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(h[:]))
	if n > max {
		return nil, fmt.Errorf("%w: frame of %d bytes (at most %d)", ErrMalformed, n, max)
	}
	if n <= cap(buf) {
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, unexpected(err)
		}
		return buf, nil
	}
	const chunk = 64 << 10
	buf = buf[:0]
	for len(buf) < n {
		m := min(n-len(buf), chunk)
		buf = slices.Grow(buf, m)[:len(buf)+m]
		if _, err := io.ReadFull(r, buf[len(buf)-m:]); err != nil {
			return nil, unexpected(err)
		}
	}
	return buf, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
