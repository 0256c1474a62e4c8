package clientproto

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sottonet/sotto/core/sphinx"
)

// The pushed downstream (docs/SPEC.md, "Pushed downstream"): a client opens
// a stream whose first request is a Subscribe naming all its mailboxes
// with their cursors. From then on the provider writes, every interval of
// the document (pkidoc.NetworkParams.Downstream), one push frame of one
// size holding exactly k slots, real messages first, the rest dummies; the
// client writes, at the same interval, one Pulse of one size carrying its
// acknowledgements and changes to the subscription. Neither is answered
// otherwise, so what crosses the link does not depend on what arrives.
//
// Subscribe (request): SubscribeEntries entries of
//
//	kind (1: 0 unused, 1 own mailbox, 2 SURB mailbox) | capability (16) | after (8)
//
// exactly one of them own. A push frame (a response to the Subscribe, op
// and ID of it, code OK) is
//
//	seq (8) | acked (8) | slot length (4) | k (2) | k slots of
//	kind (1: 0 dummy, 1 message) | kind, capability of the mailbox (17) | ID (8) | expires (8, Unix ms) | length (4) | stored message, zero-padded to slot length
//
// seq counts the frames of the stream from 1; acked is the sequence number
// of the last Pulse whose acknowledgements are applied. A refused
// Subscribe gets an ordinary error reply, and the stream stays a request
// stream. A Pulse (request, never answered) is
//
//	seq (8) | n (2) | n acks of kind (1: 0 none, 1 own, 2 SURB) | capability (16) | ID (8) | PulseChanges changes of kind (1: 0 none, 2 add SURB mailbox, 3 remove SURB mailbox) | capability (16) | after (8)
//
// Every unused entry, dummy slot and padding byte is zero: inside the
// encrypted channel that is as good as any other filler, and the lengths
// are all an observer sees.

// Ops of the pushed downstream. Far from the request ops so that ops
// added beside them do not collide.
const (
	OpSubscribe Op = 16 // mailboxes and cursors → push frames, one per interval
	OpPulse     Op = 17 // seq, acks, subscription changes (no reply)
)

// Limits of the downstream.
const (
	// SubscribeEntries is the number of mailbox entries of a Subscribe:
	// the own mailbox and up to SubscribeEntries-1 SURB mailboxes.
	SubscribeEntries = 64
	// PulseChanges is the number of change entries of every Pulse.
	PulseChanges = 2
	// MaxPulseAcks bounds the ack entries of a Pulse.
	MaxPulseAcks = 256
	// MaxPushSlots bounds k (pkidoc.MaxDownstreamSlots).
	MaxPushSlots = 64
	// MaxSlotLength bounds a push frame's slot: the longest stored message
	// (a SURB reply of a packet of MaxPacketLength).
	MaxSlotLength = 1 + 16 + MaxPacketLength

	entryLength    = 1 + 16 + 8
	slotHeader     = 1 + mailboxRefLength + 8 + 8 + 4
	pushHeader     = 8 + 8 + 4 + 2
	entryUnused    = 0
	entryOwn       = 1
	entrySURB      = 2
	entryRemove    = 3
	slotDummy      = 0
	slotMessage    = 1
	subscribeBody  = SubscribeEntries * entryLength
	pulseFixedPart = 8 + 2 + PulseChanges*entryLength
)

// SlotLength is the slot a network of geometry g needs: its longest
// stored message, a SURB reply, whose payload is the whole packet body
// (tag included: the client checks it when it decrypts).
func SlotLength(g *sphinx.Geometry) int {
	return 1 + sphinx.SURBIDLength + g.PayloadTagLength + g.ForwardPayloadLength
}

// PushFrameLength is the length of every push frame (prefix included) of
// k slots of slotLength bytes: all an observer of the link sees of it.
func PushFrameLength(k, slotLength int) int {
	return FrameHeaderLength + responseHeaderLength + pushHeader + k*(slotHeader+slotLength)
}

// PulseFrameLength is the length of every Pulse frame of acks ack entries.
func PulseFrameLength(acks int) int {
	return FrameHeaderLength + requestHeaderLength + pulseFixedPart + acks*entryLength
}

// SubscribeFrameLength is the length of every Subscribe frame.
const SubscribeFrameLength = FrameHeaderLength + requestHeaderLength + subscribeBody

// Cursor names a mailbox of a subscription and the last entry ID the
// client has of it (the provider pushes only entries above it). In a
// Pulse's changes, Remove drops a SURB mailbox from the subscription.
type Cursor struct {
	Mailbox MailboxRef
	After   uint64
	Remove  bool
}

// EntryAck acknowledges one entry of one mailbox.
type EntryAck struct {
	Mailbox MailboxRef
	ID      uint64
}

// Pushed is one real message of a push frame and the mailbox it is from.
type Pushed struct {
	Mailbox MailboxRef
	Message
}

// Push is a push frame's content: Slots slots of SlotLength bytes, of
// which the first len(Messages) hold messages.
type Push struct {
	Seq, Acked uint64
	SlotLength int
	Slots      int
	Messages   []Pushed
}

func appendEntry(b []byte, kind byte, m MailboxRef, n uint64) []byte {
	b = append(b, kind)
	b = append(b, m.Capability[:]...)
	return binary.BigEndian.AppendUint64(b, n)
}

func parseEntry(p []byte, allowed ...byte) (kind byte, m MailboxRef, n uint64, err error) {
	kind = p[0]
	ok := kind == entryUnused
	for _, a := range allowed {
		ok = ok || kind == a
	}
	if !ok {
		return 0, m, 0, badRequest(fmt.Sprintf("entry kind %d", kind))
	}
	copy(m.Capability[:], p[1:17])
	n = binary.BigEndian.Uint64(p[17:])
	switch kind {
	case entryUnused:
		if m.Capability != ([16]byte{}) || n != 0 {
			return 0, m, 0, badRequest("unused entry not zero")
		}
	case entryOwn:
		if m.Capability != ([16]byte{}) {
			return 0, m, 0, badRequest("own mailbox with a non-zero capability")
		}
	default:
		m.SURB = true
	}
	return kind, m, n, nil
}

func refKind(m MailboxRef) byte {
	if m.SURB {
		return entrySURB
	}
	return entryOwn
}

// appendDownstream encodes the fields of OpSubscribe and OpPulse.
func (r *Request) appendDownstream(b []byte) ([]byte, error) {
	switch r.Op {
	case OpSubscribe:
		own := 0
		for _, c := range r.Cursors {
			if !c.Mailbox.SURB {
				own++
			}
		}
		if len(r.Cursors) > SubscribeEntries || own != 1 {
			return nil, fmt.Errorf("%w: subscription of %d mailboxes, %d own (at most %d, one own)", ErrMalformed, len(r.Cursors), own, SubscribeEntries)
		}
		for _, c := range r.Cursors {
			b = appendEntry(b, refKind(c.Mailbox), c.Mailbox, c.After)
		}
		return append(b, make([]byte, (SubscribeEntries-len(r.Cursors))*entryLength)...), nil
	case OpPulse:
		if r.AckSlots < len(r.Acks) || r.AckSlots > MaxPulseAcks || len(r.Changes) > PulseChanges {
			return nil, fmt.Errorf("%w: pulse of %d acks in %d slots (at most %d), %d changes (at most %d)",
				ErrMalformed, len(r.Acks), r.AckSlots, MaxPulseAcks, len(r.Changes), PulseChanges)
		}
		b = binary.BigEndian.AppendUint64(b, r.Seq)
		b = binary.BigEndian.AppendUint16(b, uint16(r.AckSlots))
		for _, a := range r.Acks {
			b = appendEntry(b, refKind(a.Mailbox), a.Mailbox, a.ID)
		}
		b = append(b, make([]byte, (r.AckSlots-len(r.Acks))*entryLength)...)
		for _, c := range r.Changes {
			if !c.Mailbox.SURB {
				return nil, fmt.Errorf("%w: a pulse changes SURB mailboxes only", ErrMalformed)
			}
			kind := byte(entrySURB)
			if c.Remove {
				kind = entryRemove
			}
			b = appendEntry(b, kind, c.Mailbox, c.After)
		}
		return append(b, make([]byte, (PulseChanges-len(r.Changes))*entryLength)...), nil
	}
	return nil, fmt.Errorf("%w: cannot encode %s", ErrUnsupported, r.Op)
}

// decodeDownstream decodes the fields p of OpSubscribe and OpPulse.
func (r *Request) decodeDownstream(p []byte) error {
	switch r.Op {
	case OpSubscribe:
		if len(p) != subscribeBody {
			return fmt.Errorf("%w: subscribe request of %d bytes", ErrMalformed, len(p))
		}
		own, unused := 0, false
		for i := range SubscribeEntries {
			kind, m, after, err := parseEntry(p[i*entryLength:], entryOwn, entrySURB)
			if err != nil {
				return err
			}
			if kind == entryUnused {
				unused = true
				continue
			}
			if unused {
				return badRequest("mailbox entry after an unused one")
			}
			if kind == entryOwn {
				own++
			}
			r.Cursors = append(r.Cursors, Cursor{Mailbox: m, After: after})
		}
		if own != 1 {
			return badRequest(fmt.Sprintf("subscription names the own mailbox %d times", own))
		}
	case OpPulse:
		if len(p) < pulseFixedPart {
			return fmt.Errorf("%w: pulse of %d bytes", ErrMalformed, len(p))
		}
		r.Seq = binary.BigEndian.Uint64(p)
		n := int(binary.BigEndian.Uint16(p[8:]))
		if len(p) != pulseFixedPart+n*entryLength {
			return fmt.Errorf("%w: pulse of %d acks in %d bytes", ErrMalformed, n, len(p))
		}
		if n > MaxPulseAcks {
			return badRequest(fmt.Sprintf("%d ack slots, at most %d", n, MaxPulseAcks))
		}
		r.AckSlots = n
		p = p[10:]
		unused := false
		for i := range n {
			kind, m, id, err := parseEntry(p[i*entryLength:], entryOwn, entrySURB)
			switch {
			case err != nil:
				return err
			case kind == entryUnused:
				unused = true
			case unused:
				return badRequest("ack after an unused entry")
			default:
				r.Acks = append(r.Acks, EntryAck{Mailbox: m, ID: id})
			}
		}
		p = p[n*entryLength:]
		unused = false
		for i := range PulseChanges {
			kind, m, after, err := parseEntry(p[i*entryLength:], entrySURB, entryRemove)
			switch {
			case err != nil:
				return err
			case kind == entryUnused:
				unused = true
			case unused:
				return badRequest("change after an unused entry")
			default:
				r.Changes = append(r.Changes, Cursor{Mailbox: m, After: after, Remove: kind == entryRemove})
			}
		}
	}
	return nil
}

// appendPush encodes a push frame's fields: the messages, then dummies up
// to Slots. A message longer than the slot is refused.
func (r *Response) appendPush(b []byte) ([]byte, error) {
	p := r.Push
	if p == nil || p.Slots < 1 || p.Slots > MaxPushSlots || len(p.Messages) > p.Slots || p.SlotLength < 1 || p.SlotLength > MaxSlotLength {
		return nil, fmt.Errorf("%w: push frame of %v", ErrMalformed, p)
	}
	b = binary.BigEndian.AppendUint64(b, p.Seq)
	b = binary.BigEndian.AppendUint64(b, p.Acked)
	b = binary.BigEndian.AppendUint32(b, uint32(p.SlotLength))
	b = binary.BigEndian.AppendUint16(b, uint16(p.Slots))
	for i := range p.Messages {
		m := &p.Messages[i]
		n := MessageLength(&m.StoredMessage) - messageHeaderLength
		if n > p.SlotLength {
			return nil, fmt.Errorf("%w: message of %d bytes in a slot of %d", ErrMalformed, n, p.SlotLength)
		}
		b = append(b, slotMessage, refKind(m.Mailbox))
		b = append(b, m.Mailbox.Capability[:]...)
		b = binary.BigEndian.AppendUint64(b, m.ID)
		b = binary.BigEndian.AppendUint64(b, uint64(m.Expires.UnixMilli()))
		b = binary.BigEndian.AppendUint32(b, uint32(n))
		b = m.StoredMessage.AppendTo(b)
		b = append(b, make([]byte, p.SlotLength-n)...)
	}
	return append(b, make([]byte, (p.Slots-len(p.Messages))*(slotHeader+p.SlotLength))...), nil
}

// decodePush decodes a push frame's fields; Messages' payloads alias p.
func (r *Response) decodePush(p []byte) error {
	if len(p) < pushHeader {
		return fmt.Errorf("%w: push frame of %d bytes", ErrMalformed, len(p))
	}
	push := &Push{Seq: binary.BigEndian.Uint64(p), Acked: binary.BigEndian.Uint64(p[8:])}
	push.SlotLength = int(binary.BigEndian.Uint32(p[16:]))
	push.Slots = int(binary.BigEndian.Uint16(p[20:]))
	p = p[pushHeader:]
	if push.Slots < 1 || push.Slots > MaxPushSlots || push.SlotLength < 1 || push.SlotLength > MaxSlotLength ||
		len(p) != push.Slots*(slotHeader+push.SlotLength) {
		return fmt.Errorf("%w: push frame of %d slots of %d bytes in %d bytes", ErrMalformed, push.Slots, push.SlotLength, len(p))
	}
	dummies := false
	for i := range push.Slots {
		s := p[i*(slotHeader+push.SlotLength):][:slotHeader+push.SlotLength]
		switch s[0] {
		case slotDummy:
			if !allZero(s) {
				return fmt.Errorf("%w: dummy slot %d not zero", ErrMalformed, i)
			}
			dummies = true
			continue
		case slotMessage:
			if dummies {
				return fmt.Errorf("%w: message after a dummy in slot %d", ErrMalformed, i)
			}
		default:
			return fmt.Errorf("%w: slot kind %d", ErrMalformed, s[0])
		}
		var m Pushed
		switch s[1] {
		case entryOwn:
			if !allZero(s[2:18]) {
				return fmt.Errorf("%w: own mailbox with a capability in slot %d", ErrMalformed, i)
			}
		case entrySURB:
			m.Mailbox.SURB = true
			copy(m.Mailbox.Capability[:], s[2:18])
		default:
			return fmt.Errorf("%w: mailbox kind %d in slot %d", ErrMalformed, s[1], i)
		}
		m.ID = binary.BigEndian.Uint64(s[18:])
		m.Expires = time.UnixMilli(int64(binary.BigEndian.Uint64(s[26:])))
		n := binary.BigEndian.Uint32(s[34:])
		if uint64(n) > uint64(push.SlotLength) {
			return fmt.Errorf("%w: message of %d bytes in a slot of %d", ErrMalformed, n, push.SlotLength)
		}
		if !allZero(s[slotHeader+int(n):]) {
			return fmt.Errorf("%w: padding of slot %d not zero", ErrMalformed, i)
		}
		sm, err := ParseStored(s[slotHeader : slotHeader+int(n)])
		if err != nil {
			return fmt.Errorf("%w: slot %d: %w", ErrMalformed, i, err)
		}
		m.StoredMessage = sm
		push.Messages = append(push.Messages, m)
	}
	r.Push = push
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
