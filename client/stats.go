package client

import (
	"slices"
	"time"

	"github.com/sottonet/sotto/interfaces/wallet"
)

// maxLatencies is how many end-to-end latencies Stats keeps (the latest).
const maxLatencies = 1024

// Stats are a client's counters since New. Packets are counted by the send
// slot they filled, so PacketsPayload+PacketsLoop+PacketsDrop is what an
// observer of the client's link saw (minus SkippedSlots).
type Stats struct {
	// Outgoing messages.
	MessagesQueued uint64 // accepted by Send
	MessagesSent   uint64 // every fragment sent at least once
	MessagesAcked  uint64 // every fragment acknowledged by the recipient's provider
	// MessagesConfirmed: messages to anonymous contacts whose every
	// fragment the recipient's client acknowledged end to end.
	MessagesConfirmed uint64
	MessagesFailed    uint64
	FragmentsSent     uint64 // retransmissions included
	FragmentsAcked    uint64
	// Retransmissions counts fragments sent again after an ACK timeout.
	Retransmissions uint64

	// Incoming messages.
	MessagesDelivered uint64 // complete messages handed to Messages()
	Fetched           uint64 // mailbox entries consumed (and acknowledged)
	Duplicates        uint64 // fragments of complete messages or seen twice
	Malformed         uint64 // entries that did not decrypt or parse
	// MessagesSealed counts delivered messages that the messaging layer
	// opened (the rest were sealed to the HPKE key only); Undecryptable
	// the complete messages it refused (replays, forgeries, no session).
	MessagesSealed    uint64
	Undecryptable     uint64
	UnknownSURBs      uint64 // SURB replies whose keys this client no longer has
	UnknownLoops      uint64
	ReassemblyEvicted uint64 // partial messages dropped for room or age
	// RepliesSent counts end-to-end ACKs sent for fragments that came
	// through this client's anonymous contacts; RepliesDropped those that
	// found the queue full.
	RepliesSent    uint64
	RepliesDropped uint64

	// The pushed downstream (docs/SPEC.md, "Pushed downstream"): push
	// frames received, their slots, and the slots that held a message;
	// the rest (PushSlots-PushMessages) was padding. Pulses counts the
	// pulses written and Subscriptions the downstreams opened.
	PushFrames    uint64
	PushSlots     uint64
	PushMessages  uint64
	Pulses        uint64
	Subscriptions uint64

	// Packets by send slot.
	PacketsPayload uint64
	PacketsLoop    uint64
	PacketsDrop    uint64
	PayloadDecoys  uint64 // payload slots that carried a drop decoy (nothing queued)
	DropsSent      uint64 // all drop decoys, from drop and payload slots
	SkippedSlots   uint64 // slots that sent nothing (no document, or a build error)
	SendErrors     uint64 // packets the provider refused
	// PaymentRefused counts packets the provider refused for payment (of
	// SendErrors); Payments the credentials it accepted (Config.Wallet),
	// PaymentFailures the payments that failed; Wallet is the wallet's
	// balance (zero without one).
	PaymentRefused  uint64
	Payments        uint64
	PaymentFailures uint64
	Wallet          wallet.Balance

	// Loops.
	LoopsSent     uint64
	LoopsReturned uint64 // body back in time
	LoopsLost     uint64 // body not back within the loop timeout
	LoopsLate     uint64 // body back after being counted lost
	LoopACKsLost  uint64 // body back, but the provider's ACK through the loop's SURB not
	// LostLoopMixes counts, per mix identity, the lost loop legs it was on.
	// A dropping mix shows the highest count; others on its loops share some.
	LostLoopMixes map[[32]byte]int
	// Suspects are the mixes message paths avoid now.
	Suspects [][32]byte

	// ACKLatencies are the end-to-end latencies (Send to last fragment
	// acknowledged) of the latest acknowledged messages, oldest first.
	ACKLatencies []time.Duration
	latencies    []time.Duration
}

func (s *Stats) addLatency(d time.Duration) {
	if len(s.latencies) >= maxLatencies {
		s.latencies = slices.Delete(s.latencies, 0, len(s.latencies)-maxLatencies+1)
	}
	s.latencies = append(s.latencies, d)
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.latencies = nil
	s.ACKLatencies = slices.Clone(c.stats.latencies)
	if c.cfg.Wallet != nil {
		s.Wallet = c.cfg.Wallet.Balance()
	}
	s.LostLoopMixes = map[[32]byte]int{}
	now := time.Now()
	for id, h := range c.health {
		if h.loopsLost > 0 {
			s.LostLoopMixes[id] = h.loopsLost
		}
		if c.suspect(id, now) {
			s.Suspects = append(s.Suspects, id)
		}
	}
	return s
}
