package sphinx

import (
	"encoding/binary"
	"fmt"
)

// Command tags. 0x00–0x03 and 0x80 are Katzenpost's, byte for byte; 0x81 is
// Sotto's mailbox delivery (docs/SPEC.md, "Routing commands").
const (
	tagNull            byte = 0x00
	tagNextNodeHop     byte = 0x01
	tagRecipient       byte = 0x02
	tagSURBReply       byte = 0x03
	tagNodeDelay       byte = 0x80
	tagMailboxDelivery byte = 0x81

	nextNodeHopLength     = 1 + NodeIDLength + MACLength
	recipientLength       = 1 + RecipientIDLength
	surbReplyLength       = 1 + SURBIDLength
	nodeDelayLength       = 1 + 4
	mailboxDeliveryLength = 1 + MailboxIDLength + 4

	// MailboxIDLength is the size of a mailbox identifier.
	MailboxIDLength = 16
	// maxCommands bounds how many commands fit in a block (82 / 5).
	maxCommands = 16
)

// Command is one routing command of a hop's command block.
type Command interface {
	// AppendTo appends the command's wire encoding to b.
	AppendTo(b []byte) []byte
	// Len is the encoded length.
	Len() int
}

// NextNodeHop tells a mix where to send the packet and carries the next hop's header MAC.
type NextNodeHop struct {
	ID  [NodeIDLength]byte
	MAC [MACLength]byte
}

// Recipient names the local recipient at the final hop (a provider's user).
type Recipient struct{ ID [RecipientIDLength]byte }

// SURBReply marks a packet as a reply made from a SURB; the ID lets the
// SURB's creator find the keys.
type SURBReply struct{ ID [SURBIDLength]byte }

// NodeDelay is the time, in milliseconds, the sender asks this hop to hold the packet.
type NodeDelay struct{ Delay uint32 }

// MailboxDelivery is Sotto's command for a provider: store the payload in
// Mailbox for Lifetime seconds, then drop it (0 means the provider's default).
type MailboxDelivery struct {
	Mailbox  [MailboxIDLength]byte
	Lifetime uint32
}

func (c *NextNodeHop) AppendTo(b []byte) []byte {
	b = append(b, tagNextNodeHop)
	b = append(b, c.ID[:]...)
	return append(b, c.MAC[:]...)
}
func (c *NextNodeHop) Len() int { return nextNodeHopLength }

func (c *Recipient) AppendTo(b []byte) []byte { return append(append(b, tagRecipient), c.ID[:]...) }
func (c *Recipient) Len() int                 { return recipientLength }

func (c *SURBReply) AppendTo(b []byte) []byte { return append(append(b, tagSURBReply), c.ID[:]...) }
func (c *SURBReply) Len() int                 { return surbReplyLength }

func (c *NodeDelay) AppendTo(b []byte) []byte {
	return binary.BigEndian.AppendUint32(append(b, tagNodeDelay), c.Delay)
}
func (c *NodeDelay) Len() int { return nodeDelayLength }

func (c *MailboxDelivery) AppendTo(b []byte) []byte {
	b = append(b, tagMailboxDelivery)
	b = append(b, c.Mailbox[:]...)
	return binary.BigEndian.AppendUint32(b, c.Lifetime)
}
func (c *MailboxDelivery) Len() int { return mailboxDeliveryLength }

// Commands holds the parsed command block of one hop. Its storage is fixed,
// so parsing into a reused Commands allocates nothing.
type Commands struct {
	// List is every command in block order (NextNodeHop included).
	List []Command
	// NextHop is the NextNodeHop, nil at the final hop.
	NextHop *NextNodeHop
	// SURBReply is set when the packet is a SURB reply.
	SURBReply *SURBReply

	list [maxCommands]Command
	nh   NextNodeHop
	sr   SURBReply
	rc   [2]Recipient
	nd   [maxCommands]NodeDelay
	mb   [3]MailboxDelivery
}

// ParseCommands decodes a command block (a sequence of commands, then zero padding).
func ParseCommands(block []byte) (*Commands, error) {
	c := new(Commands)
	if err := c.parse(block); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Commands) parse(b []byte) error {
	c.List, c.NextHop, c.SURBReply = c.list[:0], nil, nil
	nrc, nnd, nmb := 0, 0, 0
	for len(b) > 0 {
		tag := b[0]
		if tag == tagNull {
			for _, v := range b[1:] {
				if v != 0 {
					return fmt.Errorf("%w: nonzero byte after the end of the commands", ErrInvalidCommand)
				}
			}
			return nil
		}
		var cmd Command
		var n int
		switch tag {
		case tagNextNodeHop:
			if c.NextHop != nil {
				return fmt.Errorf("%w: more than one NextNodeHop", ErrInvalidCommand)
			}
			if n = nextNodeHopLength; len(b) < n {
				break
			}
			copy(c.nh.ID[:], b[1:33])
			copy(c.nh.MAC[:], b[33:65])
			c.NextHop, cmd = &c.nh, &c.nh
		case tagRecipient:
			if n = recipientLength; len(b) < n || nrc == len(c.rc) {
				break
			}
			r := &c.rc[nrc]
			nrc++
			copy(r.ID[:], b[1:n])
			cmd = r
		case tagSURBReply:
			if c.SURBReply != nil {
				return fmt.Errorf("%w: more than one SURBReply", ErrInvalidCommand)
			}
			if n = surbReplyLength; len(b) < n {
				break
			}
			copy(c.sr.ID[:], b[1:n])
			c.SURBReply, cmd = &c.sr, &c.sr
		case tagNodeDelay:
			if n = nodeDelayLength; len(b) < n || nnd == len(c.nd) {
				break
			}
			d := &c.nd[nnd]
			nnd++
			d.Delay = binary.BigEndian.Uint32(b[1:n])
			cmd = d
		case tagMailboxDelivery:
			if n = mailboxDeliveryLength; len(b) < n || nmb == len(c.mb) {
				break
			}
			m := &c.mb[nmb]
			nmb++
			copy(m.Mailbox[:], b[1:1+MailboxIDLength])
			m.Lifetime = binary.BigEndian.Uint32(b[1+MailboxIDLength : n])
			cmd = m
		default:
			return fmt.Errorf("%w: unknown tag 0x%02x", ErrInvalidCommand, tag)
		}
		if cmd == nil {
			return fmt.Errorf("%w: command 0x%02x cut short or repeated too often", ErrInvalidCommand, tag)
		}
		if len(c.List) == maxCommands {
			return fmt.Errorf("%w: too many commands", ErrInvalidCommand)
		}
		c.List = append(c.List, cmd)
		b = b[n:]
	}
	return nil
}

// encodeBlock writes cmds (and next, when not nil) into a zero-padded block.
func encodeBlock(block []byte, cmds []Command, next *NextNodeHop) error {
	clear(block)
	b := block[:0]
	for _, c := range cmds {
		if c == nil {
			return fmt.Errorf("%w: nil command", ErrInvalidPath)
		}
		if _, ok := c.(*NextNodeHop); ok {
			return fmt.Errorf("%w: the path's commands may not include a NextNodeHop", ErrInvalidPath)
		}
		if len(b)+c.Len() > len(block) {
			return fmt.Errorf("%w: commands do not fit in %d bytes", ErrInvalidPath, len(block))
		}
		b = c.AppendTo(b)
	}
	if next != nil {
		if len(b)+nextNodeHopLength > len(block) {
			return fmt.Errorf("%w: commands leave no room for NextNodeHop", ErrInvalidPath)
		}
		b = next.AppendTo(b)
	}
	return nil
}
