package demo

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sottonet/sotto/client"
)

// deliver runs one message through a tracker the way a demo does: sent by
// alice to bob, then whatever the recipients received.
func deliver(t *testing.T, tr *tracker, n byte, body []byte, got ...received) {
	t.Helper()
	id := client.MessageID{n}
	tr.sent(&Record{From: "alice", To: "bob", Kind: "forward", Size: len(body), Fragments: 1, ID: id,
		Sent: time.Unix(100, 0)}, body)
	for _, g := range got {
		m := client.Message{ID: id, Body: g.body, Received: time.Unix(101, 0), Sender: []byte("alice")}
		if g.plain {
			m.Sender = nil
		}
		tr.received(g.to, m)
	}
}

type received struct {
	to    string
	body  []byte
	plain bool // sealed to the HPKE key only, not through the ratchet
}

func TestTheVerdict(t *testing.T) {
	body := []byte("hello bob")
	ok := received{"bob", body, false}
	tests := []struct {
		name    string
		got     []received
		wantErr string // "" for a pass
	}{
		{"a message delivered intact once passes", []received{ok}, ""},
		{"a message never delivered is lost", nil, "LOST"},
		{"a message delivered twice is duplicated", []received{ok, ok}, "DUPLICATED"},
		{"a message delivered with another body is corrupt", []received{{"bob", []byte("hello eve"), false}}, "CORRUPT"},
		{"a message delivered to the wrong client is corrupt", []received{{"alice", body, false}}, "CORRUPT"},
		{"a corrupt copy beside an intact one still fails", []received{ok, {"bob", []byte("x"), false}}, "CORRUPT"},
		{"a message the ratchet did not open fails", []received{{"bob", body, true}}, "not opened by the Double Ratchet"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker()
			deliver(t, tr, 1, []byte("another message"), received{"bob", []byte("another message"), false})
			deliver(t, tr, 2, body, tc.got...)
			s := &Summary{}
			s.Messages, s.Unexpected = tr.snapshot()
			err := s.Err()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("verdict %v, want a pass", err)
				}
				if s.Delivered() != 2 {
					t.Errorf("delivered %d of 2", s.Delivered())
				}
				return
			}
			if !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "#2") {
				t.Fatalf("verdict %v, want ErrLost naming #2 as %s", err, tc.wantErr)
			}
			var out bytes.Buffer
			s.Write(&out)
			if !strings.Contains(out.String(), "FAIL") {
				t.Errorf("the printed summary does not say FAIL:\n%s", out.String())
			}
		})
	}
}

func TestAMessageNobodySentFailsTheVerdict(t *testing.T) {
	tr := newTracker()
	deliver(t, tr, 1, []byte("hi"), received{"bob", []byte("hi"), false})
	tr.received("bob", client.Message{ID: client.MessageID{9}, Body: []byte("from nowhere")})
	s := &Summary{}
	s.Messages, s.Unexpected = tr.snapshot()
	if err := s.Err(); !errors.Is(err, ErrLost) || s.Unexpected != 1 {
		t.Fatalf("verdict %v with %d unexpected, want ErrLost and 1", err, s.Unexpected)
	}
}

func TestARunThatSentNothingFails(t *testing.T) {
	if err := (&Summary{}).Err(); !errors.Is(err, ErrLost) {
		t.Fatalf("verdict %v, want ErrLost", err)
	}
}

// A plan that stopped early fails the verdict even when everything sent so
// far arrived, and the summary does not print OK.
func TestAPlanThatStoppedEarlyFails(t *testing.T) {
	tr := newTracker()
	deliver(t, tr, 1, []byte("hi"), received{"bob", []byte("hi"), false})
	s := &Summary{RunErr: errors.New("bob could not restart")}
	s.Messages, s.Unexpected = tr.snapshot()
	if err := s.Err(); !errors.Is(err, ErrLost) {
		t.Fatalf("verdict %v, want ErrLost", err)
	}
	var out strings.Builder
	s.Write(&out)
	if strings.Contains(out.String(), "verdict      OK") || !strings.Contains(out.String(), "bob could not restart") {
		t.Fatalf("summary says:\n%s", out.String())
	}
}

// A message received before its Send returned (the tracker has no record
// yet) is matched when the record arrives.
func TestADeliveryBeforeTheRecordIsMatched(t *testing.T) {
	tr := newTracker()
	id := client.MessageID{3}
	tr.received("bob", client.Message{ID: id, Body: []byte("quick"), Received: time.Unix(5, 0), Sender: []byte("alice")})
	tr.sent(&Record{From: "alice", To: "bob", ID: id, Sent: time.Unix(4, 0)}, []byte("quick"))
	s := &Summary{}
	s.Messages, s.Unexpected = tr.snapshot()
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if l := s.Messages[0].Latency(); l != time.Second {
		t.Errorf("latency %v, want 1s", l)
	}
}

// A final status filed before Send returned is kept for the record.
func TestAStatusBeforeTheRecordIsKept(t *testing.T) {
	tr := newTracker()
	id := client.MessageID{4}
	tr.status(client.MessageStatus{ID: id, State: client.StateSent})
	tr.sent(&Record{From: "alice", To: "bob", ID: id, Sent: time.Unix(4, 0)}, []byte("x"))
	if st, ok := tr.final(id); !ok || st != client.StateSent {
		t.Errorf("final state %v (%v), want %v", st, ok, client.StateSent)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"no samples give zero", nil, 50, 0},
		{"one sample is every percentile", ms(7), 99, 7 * time.Millisecond},
		{"the median of four is the second (nearest rank)", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of a hundred is the 99th", ms(seq(100)...), 99, 99 * time.Millisecond},
		{"p99 of ten is the largest", ms(seq(10)...), 99, 10 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("Percentile(%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

// Offline recipients' latencies (the wait in the mailbox) stay out of the
// percentiles; cover share counts loops, drops and decoys.
func TestSummaryArithmetic(t *testing.T) {
	s := &Summary{
		Messages: []Record{
			{Deliveries: 1, Sent: time.Unix(0, 0), Delivered: time.Unix(2, 0)},
			{Deliveries: 1, Sent: time.Unix(0, 0), Delivered: time.Unix(60, 0), Offline: true},
			{Deliveries: 0},
		},
		PacketsPayload: 50, PayloadDecoys: 30, PacketsLoop: 25, PacketsDrop: 25,
		PushFrames: 10, PushSlots: 20, PushMessages: 5,
	}
	if got := s.DownstreamPadding(); got != 0.75 {
		t.Errorf("downstream padding %v, want 0.75 (15 of 20 slots were dummies)", got)
	}
	if l := s.Latencies(); len(l) != 1 || l[0] != 2*time.Second {
		t.Errorf("latencies %v, want [2s]", l)
	}
	if got := s.CoverShare(); got != 0.8 {
		t.Errorf("cover share %v, want 0.8 (80 of 100 packets carried nothing)", got)
	}
}

func TestConfigValidation(t *testing.T) {
	valid := func() Config { c := Config{Binary: "sotto"}; c.setDefaults(); return c }
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"defaults are valid", func(*Config) {}, ""},
		{"one provider is refused", func(c *Config) { c.Providers = 1 }, "providers"},
		{"too few messages are refused", func(c *Config) { c.Messages = 3 }, "messages"},
		{"a duration replaces the count", func(c *Config) { c.Messages, c.Duration = 1, time.Minute }, ""},
		{"a zero rate is refused", func(c *Config) { c.LambdaL = -1 }, "λL"},
		{"killing the only mix of a layer is refused", func(c *Config) { c.MixesPerLayer, c.KillMixAfter = 1, time.Second }, "two mixes"},
		{"a tiny epoch is refused", func(c *Config) { c.Epoch = time.Second }, "epoch"},
		{"no binary is refused", func(c *Config) { c.Binary = "" }, "binary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			err := c.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestProgressRedrawsInPlaceOnlyWhenLive(t *testing.T) {
	for _, live := range []bool{true, false} {
		var b bytes.Buffer
		p := newProgress(&b, live)
		p.update("status 1")
		p.phase("a phase")
		p.update("status 2")
		p.done()
		out := b.String()
		if hasCR := strings.Contains(out, "\r"); hasCR != live {
			t.Errorf("live=%v: output %q", live, out)
		}
		if !strings.Contains(out, "a phase\n") || !strings.Contains(out, "status 2") {
			t.Errorf("live=%v: output %q lacks the phase or the status", live, out)
		}
	}
}
