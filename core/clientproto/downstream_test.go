package clientproto

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/sottonet/sotto/core/sphinx"
)

// testGeo has a slot of 1+16+16+64 bytes.
var testGeo = &sphinx.Geometry{PayloadTagLength: 16, ForwardPayloadLength: 64}

func samplePush(msgs int) *Push {
	p := &Push{Seq: 7, Acked: 3, SlotLength: SlotLength(testGeo), Slots: 3}
	all := []Pushed{
		{Message: Message{ID: 1, Expires: expires, StoredMessage: StoredMessage{Payload: []byte("forward body")}}},
		{Mailbox: MailboxRef{SURB: true, Capability: [16]byte{4}}, Message: Message{ID: 9, Expires: expires,
			StoredMessage: StoredMessage{Reply: true, SURBID: [16]byte{5}, Payload: bytes.Repeat([]byte{1}, 64)}}},
		{Message: Message{ID: 12, Expires: expires, StoredMessage: StoredMessage{Payload: []byte{}}}},
	}
	p.Messages = all[:msgs]
	return p
}

// Every push frame of a stream has one length, whatever it carries, and
// decodes to what was encoded.
func TestPushFramesHaveOneLength(t *testing.T) {
	for n := range 4 {
		want := samplePush(n)
		frame, err := (&Response{ID: 5, Op: OpSubscribe, Push: want}).AppendFrame(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(frame) != PushFrameLength(3, SlotLength(testGeo)) {
			t.Fatalf("%d messages: frame of %d bytes, want %d", n, len(frame), PushFrameLength(3, SlotLength(testGeo)))
		}
		var got Response
		if err := got.Decode(body(t, frame)); err != nil {
			t.Fatal(err)
		}
		if got.Push == nil || got.Push.Seq != 7 || got.Push.Acked != 3 || len(got.Push.Messages) != n {
			t.Fatalf("%d messages: decoded %+v", n, got.Push)
		}
		for i, m := range got.Push.Messages {
			w := want.Messages[i]
			if m.Mailbox != w.Mailbox || m.ID != w.ID || !m.Expires.Equal(w.Expires) || m.Reply != w.Reply ||
				m.SURBID != w.SURBID || !bytes.Equal(m.Payload, w.Payload) {
				t.Fatalf("message %d: %+v, want %+v", i, m, w)
			}
		}
	}
	tooLong := samplePush(0)
	tooLong.Messages = []Pushed{{Message: Message{StoredMessage: StoredMessage{Payload: make([]byte, tooLong.SlotLength)}}}}
	if _, err := (&Response{Op: OpSubscribe, Push: tooLong}).AppendFrame(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a message longer than its slot encodes: %v", err)
	}
}

// Subscribe and Pulse frames have one length each, whatever they carry.
func TestSubscribeAndPulseHaveOneLength(t *testing.T) {
	surb := MailboxRef{SURB: true, Capability: [16]byte{1, 2}}
	reqs := []Request{
		{ID: 1, Op: OpSubscribe, Cursors: []Cursor{{After: 3}}},
		{ID: 1, Op: OpSubscribe, Cursors: []Cursor{{After: 3}, {Mailbox: surb, After: 9}}},
		{ID: 2, Op: OpPulse, Seq: 1, AckSlots: 4},
		{ID: 2, Op: OpPulse, Seq: 2, AckSlots: 4, Acks: []EntryAck{{ID: 5}, {Mailbox: surb, ID: 6}},
			Changes: []Cursor{{Mailbox: surb, After: 2}, {Mailbox: MailboxRef{SURB: true}, Remove: true}}},
	}
	for i, want := range reqs {
		frame, err := want.AppendFrame(nil)
		if err != nil {
			t.Fatal(err)
		}
		wantLen := SubscribeFrameLength
		if want.Op == OpPulse {
			wantLen = PulseFrameLength(4)
		}
		if len(frame) != wantLen {
			t.Fatalf("request %d: %d bytes, want %d", i, len(frame), wantLen)
		}
		var got Request
		if err := got.Decode(body(t, frame)); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("request %d: decoded %+v, want %+v", i, got, want)
		}
	}
	for _, bad := range []Request{
		{Op: OpSubscribe},
		{Op: OpSubscribe, Cursors: []Cursor{{}, {}}},
		{Op: OpPulse, AckSlots: 1, Acks: []EntryAck{{}, {}}},
		{Op: OpPulse, Changes: []Cursor{{}}},
	} {
		if _, err := bad.AppendFrame(nil); err == nil {
			t.Errorf("%+v encodes", bad)
		}
	}
}

func FuzzPushDecode(f *testing.F) {
	for n := range 4 {
		fr, err := (&Response{ID: 5, Op: OpSubscribe, Push: samplePush(n)}).AppendFrame(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fr[FrameHeaderLength:])
	}
	for _, r := range []Request{{ID: 1, Op: OpSubscribe, Cursors: []Cursor{{After: 3}}}, {Op: OpPulse, AckSlots: 2, Acks: []EntryAck{{ID: 1}}}} {
		fr, err := r.AppendFrame(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fr[FrameHeaderLength:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Canonical: what decodes re-encodes to itself.
		var resp Response
		if resp.Decode(b) == nil {
			fr, err := resp.AppendFrame(nil)
			if err != nil {
				t.Fatalf("decoded response does not encode: %v", err)
			}
			if !bytes.Equal(fr[FrameHeaderLength:], b) {
				t.Fatalf("response re-encoding differs")
			}
		}
		var req Request
		if req.Decode(b) == nil {
			fr, err := req.AppendFrame(nil)
			if err != nil {
				t.Fatalf("decoded request does not encode: %v", err)
			}
			if !bytes.Equal(fr[FrameHeaderLength:], b) {
				t.Fatalf("request re-encoding differs")
			}
		}
	})
}
