package demo

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sottonet/sotto/client"
	"github.com/sottonet/sotto/internal/rewards"
)

// ErrLost is what Summary.Err wraps when a message was not delivered
// intact exactly once.
var ErrLost = errors.New("demo: messages lost")

// Record is one message of the demo's plan and what became of it.
type Record struct {
	N         int    // 1-based, in sending order
	From, To  string // client names
	Kind      string // forward, long, anonymous, offline, offline-anonymous
	Size      int
	Fragments int
	ID        client.MessageID
	Sent      time.Time // when Send accepted it
	Sum       [32]byte  // SHA-256 of the body sent

	// At the sender: the message's final state (acked, sent for an
	// anonymous contact, failed), zero while in flight.
	State client.MessageState
	Err   error
	// At the recipient.
	Deliveries int // intact deliveries
	Corrupt    int // deliveries of this ID whose body differed
	Delivered  time.Time
	// Ratchet: its first intact delivery was opened by the messaging
	// layer (the Double Ratchet, plugins/msg-ratchet), which named its
	// sender; not by the HPKE seal alone.
	Ratchet bool
	// Offline: the recipient was offline when it was sent, so its latency
	// includes the wait in the mailbox and stays out of the percentiles.
	Offline bool
}

// Latency is Sent to first intact delivery; zero if not delivered.
func (r *Record) Latency() time.Duration {
	if r.Deliveries == 0 {
		return 0
	}
	return r.Delivered.Sub(r.Sent)
}

// OK reports whether the message arrived intact exactly once.
func (r *Record) OK() bool { return r.Deliveries == 1 && r.Corrupt == 0 }

func (r *Record) verdict() string {
	switch {
	case r.OK():
		return "ok"
	case r.Corrupt > 0:
		return fmt.Sprintf("CORRUPT (%d bad deliveries)", r.Corrupt)
	case r.Deliveries == 0:
		return "LOST"
	default:
		return fmt.Sprintf("DUPLICATED (%d deliveries)", r.Deliveries)
	}
}

// tracker matches what recipients receive against what senders sent.
type tracker struct {
	mu         sync.Mutex
	recs       []*Record
	byID       map[client.MessageID]*Record
	early      map[client.MessageID][]client.Message     // received before Send returned
	earlyState map[client.MessageID]client.MessageStatus // final before Send returned
	unexpected int
	changed    chan struct{} // closed and replaced on every delivery
}

func newTracker() *tracker {
	return &tracker{byID: map[client.MessageID]*Record{}, early: map[client.MessageID][]client.Message{},
		earlyState: map[client.MessageID]client.MessageStatus{}, changed: make(chan struct{})}
}

// sent registers a message Send accepted.
func (t *tracker) sent(r *Record, body []byte) {
	r.Sum = sha256.Sum256(body)
	t.mu.Lock()
	defer t.mu.Unlock()
	r.N = len(t.recs) + 1
	t.recs = append(t.recs, r)
	t.byID[r.ID] = r
	for _, m := range t.early[r.ID] {
		t.deliverLocked(r.To, m)
	}
	delete(t.early, r.ID)
	if st, ok := t.earlyState[r.ID]; ok {
		r.State, r.Err = st.State, st.Err
		delete(t.earlyState, r.ID)
	}
}

// received files a message a client got.
func (t *tracker) received(to string, m client.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.byID[m.ID]; !ok {
		if len(t.early) < 1024 {
			t.early[m.ID] = append(t.early[m.ID], m)
		} else {
			t.unexpected++
		}
		return
	}
	t.deliverLocked(to, m)
}

func (t *tracker) deliverLocked(to string, m client.Message) {
	r := t.byID[m.ID]
	switch {
	case r.To != to || sha256.Sum256(m.Body) != r.Sum:
		r.Corrupt++
	default:
		r.Deliveries++
		if r.Deliveries == 1 {
			r.Delivered = m.Received
			r.Ratchet = m.Sender != nil
		}
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

// status files a sender's final status of a message.
func (t *tracker) status(st client.MessageStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.byID[st.ID]; ok {
		r.State, r.Err = st.State, st.Err
	} else if len(t.earlyState) < 1024 {
		// Send has not returned yet (a message for an anonymous contact
		// can be final as soon as its fragments are out): keep it for sent.
		t.earlyState[st.ID] = st
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

// counts returns sent, delivered intact, and a channel closed at the next
// change.
func (t *tracker) counts() (sent, delivered int, changed <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.recs {
		if r.Deliveries > 0 {
			delivered++
		}
	}
	return len(t.recs), delivered, t.changed
}

// acked reports whether id reached a final state at its sender, and which.
func (t *tracker) final(id client.MessageID) (client.MessageState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.byID[id]
	if !ok || r.State == 0 {
		return 0, false
	}
	return r.State, true
}

// snapshot copies the records and the count of messages nobody sent.
func (t *tracker) snapshot() ([]Record, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Record, len(t.recs))
	for i, r := range t.recs {
		out[i] = *r
	}
	unexpected := t.unexpected
	for _, ms := range t.early {
		unexpected += len(ms)
	}
	return out, unexpected
}

// Summary is what a demo run measured.
type Summary struct {
	Config  Config // as run, defaults filled in
	Elapsed time.Duration
	// Interrupted: the run ended (Ctrl-C) before its plan did, so messages
	// in flight count as lost.
	Interrupted bool
	// RunErr is why the plan stopped before its end (a step that failed),
	// if it did: the verdict is then a failure whatever was delivered.
	RunErr error

	Messages []Record
	// Unexpected counts messages received that no client sent.
	Unexpected int

	// Client packets by send slot, summed over clients (and restarts).
	PacketsPayload, PacketsLoop, PacketsDrop uint64
	PayloadDecoys                            uint64 // payload slots with nothing queued
	Retransmissions                          uint64
	ClientLoopsSent, ClientLoopsReturned     uint64
	ClientLoopsLost, ClientLoopsLate         uint64
	// The pushed downstream, summed over clients: frames received, their
	// slots, and the slots that held a message.
	PushFrames, PushSlots, PushMessages uint64

	// Scraped from the nodes' /metrics at the end (nodes that are down are
	// listed in NotScraped).
	MixLoopsSent, MixLoopsReturned, MixLoopsLost float64
	Dropped                                      map[string]float64 // by reason
	NotScraped                                   []string

	// Killed names the mix taken down mid-run (Config.KillMixAfter), and
	// Noticed says whether some client counted it on lost loops or holds it
	// as a suspect.
	Killed  string
	Noticed bool
	// Suspects are the mixes some client avoided at the end, by name.
	Suspects []string

	// Accounting is Config.Accounting. With blindsig: the tokens alice
	// and bob obtained and spent, their packets refused for payment, and
	// whether carol (no wallet) was refused at her provider.
	Accounting                           string
	CredentialsObtained                  uint64
	CredentialsSpent                     uint64
	PaymentRefused                       uint64
	FreeloaderChecked, FreeloaderRefused bool
	FreeloaderRefusedPackets             uint64
	// Rewards is the rewards report gathered from the nodes' metrics at
	// the end (internal/rewards); CheatingMix cheated by CheatDrop.
	Rewards     []rewards.Table
	CheatingMix string
	CheatDrop   float64

	// Cost, measured in the run itself (the cost line): what alice's
	// and bob's wallets did (Pay calls, the design's bytes each way on
	// the client protocol, the CPU of the goroutines running Pay), this
	// process's CPU since the clients started (the clients' whole cost),
	// the client packets the providers received, and the providers' CPU
	// (node processes, and their accounting plugin processes) from /proc.
	// CPUMeasured is false where /proc or the thread's usage was not
	// there to read.
	PayCalls, PayBytesSent, PayBytesRecv uint64
	PayCPU, ClientProcessCPU             time.Duration
	GatewayPackets                       uint64
	GatewayNodeCPU, GatewayAccountingCPU time.Duration
	CPUMeasured                          bool
	// MixLedgerCPU is the mixes' work-ledger plugins' CPU over the same
	// time, summed: what a plugin process costs when it does next to
	// nothing (a report per epoch), for scale.
	MixLedgerCPU time.Duration
}

// Sent is the number of messages sent; Delivered those that arrived intact
// exactly once.
func (s *Summary) Sent() int { return len(s.Messages) }

// Delivered counts the messages that arrived intact exactly once.
func (s *Summary) Delivered() int {
	n := 0
	for i := range s.Messages {
		if s.Messages[i].OK() {
			n++
		}
	}
	return n
}

// ThroughRatchet counts the messages delivered intact exactly once that
// the Double Ratchet opened.
func (s *Summary) ThroughRatchet() int {
	n := 0
	for i := range s.Messages {
		if s.Messages[i].OK() && s.Messages[i].Ratchet {
			n++
		}
	}
	return n
}

// Err is nil when every message arrived intact exactly once, through the
// Double Ratchet, and nothing arrived that nobody sent; otherwise it wraps
// ErrLost and says what went wrong. It is the demo's verdict.
func (s *Summary) Err() error {
	var bad []string
	for i := range s.Messages {
		r := &s.Messages[i]
		if !r.OK() {
			bad = append(bad, fmt.Sprintf("#%d %s→%s %s: %s", r.N, r.From, r.To, r.Kind, r.verdict()))
		} else if !r.Ratchet {
			bad = append(bad, fmt.Sprintf("#%d %s→%s %s: not opened by the Double Ratchet", r.N, r.From, r.To, r.Kind))
		}
	}
	if s.Unexpected > 0 {
		bad = append(bad, fmt.Sprintf("%d messages nobody sent", s.Unexpected))
	}
	if len(s.Messages) == 0 {
		bad = append(bad, "no message was sent")
	}
	if s.RunErr != nil {
		bad = append(bad, fmt.Sprintf("the plan stopped before its end: %v", s.RunErr))
	}
	if s.FreeloaderChecked && !s.FreeloaderRefused {
		bad = append(bad, "carol, without a wallet, was not refused as payment required")
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d of %d not delivered intact exactly once: %s", ErrLost,
		len(s.Messages)-s.Delivered(), len(s.Messages), strings.Join(bad, "; "))
}

// Latencies returns the latencies of messages delivered to recipients
// that were online, sorted.
func (s *Summary) Latencies() []time.Duration {
	var l []time.Duration
	for i := range s.Messages {
		if r := &s.Messages[i]; r.Deliveries > 0 && !r.Offline {
			l = append(l, r.Latency())
		}
	}
	slices.Sort(l)
	return l
}

// Percentile is the nearest-rank p-th percentile (0 < p ≤ 100) of sorted
// durations; 0 for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted)) + 0.999999)
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// ClientPackets is every packet the clients sent.
func (s *Summary) ClientPackets() uint64 { return s.PacketsPayload + s.PacketsLoop + s.PacketsDrop }

// CoverShare is the share of the clients' packets that carried no message:
// loops, drops, and payload slots filled with a decoy.
func (s *Summary) CoverShare() float64 {
	if s.ClientPackets() == 0 {
		return 0
	}
	return float64(s.PacketsLoop+s.PacketsDrop+s.PayloadDecoys) / float64(s.ClientPackets())
}

// DownstreamPadding is the share of the downstream's slots that carried
// no message (dummies), the receiving side's counterpart of CoverShare.
func (s *Summary) DownstreamPadding() float64 {
	if s.PushSlots == 0 {
		return 0
	}
	return float64(s.PushSlots-s.PushMessages) / float64(s.PushSlots)
}

func pct(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// Write prints the summary for a human.
func (s *Summary) Write(w io.Writer) {
	c := &s.Config
	fmt.Fprintf(w, "\nSotto demo summary (%s)\n", s.Elapsed.Round(100*time.Millisecond))
	fmt.Fprintf(w, "  network      %d layers × %d mixes, %d providers, epoch %v; μ=%g/s λP=%g λL=%g λD=%g λM=%g per s\n",
		c.Layers, c.MixesPerLayer, c.Providers, c.Epoch, c.Mu, c.LambdaP, c.LambdaL, c.LambdaD, c.LambdaM)
	fmt.Fprintf(w, "  messages     %d sent, %d delivered intact exactly once", s.Sent(), s.Delivered())
	if s.Unexpected > 0 {
		fmt.Fprintf(w, ", %d unexpected", s.Unexpected)
	}
	fmt.Fprintln(w)
	for i := range s.Messages {
		r := &s.Messages[i]
		lat := "-"
		if r.Deliveries > 0 {
			lat = r.Latency().Round(10 * time.Millisecond).String()
		}
		note := ""
		if r.Offline {
			note = " (recipient offline when sent)"
		}
		state := r.State.String()
		if r.State == 0 {
			state = "in flight"
		}
		fmt.Fprintf(w, "    #%-2d %-5s → %-5s %-17s %6d B %2d frag  %-6s  %-9s %8s%s\n",
			r.N, r.From, r.To, r.Kind, r.Size, r.Fragments, r.verdict(), state, lat, note)
	}
	fmt.Fprintf(w, "  end to end   %d of %d delivered messages sealed and opened by the Double Ratchet (plugins/msg-ratchet: X3DH-style start from the contact's card, then a ratchet step per round trip); the rest HPKE only\n",
		s.ThroughRatchet(), s.Delivered())
	l := s.Latencies()
	fmt.Fprintf(w, "  latency      p50 %v, p99 %v (send to delivery, %d messages to online recipients)\n",
		Percentile(l, 50).Round(10*time.Millisecond), Percentile(l, 99).Round(10*time.Millisecond), len(l))
	total := s.ClientPackets()
	fmt.Fprintf(w, "  client pkts  %d sent: %d payload slots (%d carried fragments, %d decoys), %d loops, %d drops\n",
		total, s.PacketsPayload, s.PacketsPayload-s.PayloadDecoys, s.PayloadDecoys, s.PacketsLoop, s.PacketsDrop)
	fmt.Fprintf(w, "  cover share  %.1f%% of client packets (loops %.1f%%, drops %.1f%%, decoys %.1f%%); %d retransmissions\n",
		100*s.CoverShare(), pct(s.PacketsLoop, total), pct(s.PacketsDrop, total), pct(s.PayloadDecoys, total), s.Retransmissions)
	fmt.Fprintf(w, "  downstream   padding %.1f%% of %d slots in %d push frames (%d carried messages)\n",
		100*s.DownstreamPadding(), s.PushSlots, s.PushFrames, s.PushMessages)
	fmt.Fprintf(w, "  loops        client: %d sent, %d returned, %d lost, %d late; mix: %.0f sent, %.0f returned, %.0f lost\n",
		s.ClientLoopsSent, s.ClientLoopsReturned, s.ClientLoopsLost, s.ClientLoopsLate, s.MixLoopsSent, s.MixLoopsReturned, s.MixLoopsLost)
	fmt.Fprintf(w, "  dropped      %s (all nodes, sotto_packets_dropped_total)\n", formatDropped(s.Dropped))
	s.writePayment(w)
	s.writeCost(w)
	if len(s.NotScraped) > 0 {
		fmt.Fprintf(w, "  not scraped  %s (down)\n", strings.Join(s.NotScraped, ", "))
	}
	if s.Killed != "" {
		noticed := "no client noticed it"
		if s.Noticed {
			noticed = "clients noticed it (lost loops through it)"
		}
		fmt.Fprintf(w, "  killed       %s mid-run; %s; suspects at the end: %s\n", s.Killed, noticed, orNone(s.Suspects))
	}
	if err := s.Err(); s.Interrupted {
		fmt.Fprintf(w, "  verdict      INTERRUPTED before the plan finished: %d of %d messages delivered so far\n", s.Delivered(), s.Sent())
	} else if err != nil {
		fmt.Fprintf(w, "  verdict      FAIL: %v\n", err)
	} else {
		fmt.Fprintf(w, "  verdict      OK: every message delivered intact exactly once, opened by the Double Ratchet\n")
	}
}

func formatDropped(m map[string]float64) string {
	var parts []string
	for _, k := range slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b))
	}) {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k]))
		}
	}
	return orNone(parts)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// perPacket is d per packet in µs (0 for no packets).
func perPacket(d time.Duration, packets uint64) float64 {
	if packets == 0 {
		return 0
	}
	return float64(d.Nanoseconds()) / 1e3 / float64(packets)
}

// writeCost prints the cost line: bytes and CPU per packet at the gateway
// and at the client, measured in this run.
func (s *Summary) writeCost(w io.Writer) {
	if !s.CPUMeasured {
		fmt.Fprintf(w, "  cost         not measured (CPU times come from /proc, on Linux)\n")
		return
	}
	cp := s.ClientPackets()
	var bpp float64
	if cp > 0 {
		bpp = float64(s.PayBytesSent+s.PayBytesRecv) / float64(cp)
	}
	fmt.Fprintf(w, "  cost         gateway: %d client packets in; providers' node processes %.0f µs CPU/packet, their accounting plugins %.2f µs/packet (%v; the %d mixes' work ledgers %v); payment %.2f B/packet (%d B up, %d B down)\n",
		s.GatewayPackets, perPacket(s.GatewayNodeCPU, s.GatewayPackets), perPacket(s.GatewayAccountingCPU, s.GatewayPackets),
		s.GatewayAccountingCPU, s.Config.Layers*s.Config.MixesPerLayer, s.MixLedgerCPU, bpp, s.PayBytesSent, s.PayBytesRecv)
	fmt.Fprintf(w, "  cost         client: %d packets out (alice, bob); the clients' process %.0f µs CPU/packet, their wallets %.3f µs/packet (%d Pay calls, %v)\n",
		cp, perPacket(s.ClientProcessCPU, cp), perPacket(s.PayCPU, cp), s.PayCalls, s.PayCPU.Round(time.Microsecond))
}
