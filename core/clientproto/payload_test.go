package clientproto

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sottonet/sotto/core/sphinx"
)

func TestForwardLayout(t *testing.T) {
	g := sphinx.DefaultGeometry()
	surb := bytes.Repeat([]byte{7}, g.SURBLength)
	body := []byte("hello")
	for _, tt := range []struct {
		name string
		surb []byte
	}{{"with SURB", surb}, {"without SURB", nil}} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := PackForward(g, tt.surb, body)
			if err != nil {
				t.Fatal(err)
			}
			if len(p) != g.ForwardPayloadLength {
				t.Fatalf("payload %d bytes, want %d", len(p), g.ForwardPayloadLength)
			}
			s, b, err := SplitForward(g, p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s, tt.surb) || len(b) != g.UserForwardPayloadLength || !bytes.HasPrefix(b, body) {
				t.Fatalf("split gave surb %d bytes, body %q...", len(s), b[:8])
			}
		})
	}
	bad := make([]byte, g.ForwardPayloadLength)
	bad[1] = 3
	for name, p := range map[string][]byte{"short": bad[:10], "odd SURB length": bad} {
		if _, _, err := SplitForward(g, p); !errors.Is(err, ErrPayload) {
			t.Errorf("%s: err = %v, want ErrPayload", name, err)
		}
	}
	if _, err := PackForward(g, nil, make([]byte, g.UserForwardPayloadLength+1)); !errors.Is(err, ErrPayload) {
		t.Errorf("oversize body: err = %v", err)
	}
}

func TestStoredRoundTrip(t *testing.T) {
	for _, m := range []StoredMessage{
		{Payload: []byte("forward")},
		{Reply: true, SURBID: [16]byte{1, 2, 3}, Payload: []byte("reply")},
		{Reply: true},
	} {
		got, err := ParseStored(m.AppendTo(nil))
		if err != nil {
			t.Fatal(err)
		}
		if got.Reply != m.Reply || got.SURBID != m.SURBID || !bytes.Equal(got.Payload, m.Payload) {
			t.Fatalf("round trip: %+v != %+v", got, m)
		}
	}
	for _, b := range [][]byte{nil, {9}, {storedReply, 1, 2}} {
		if _, err := ParseStored(b); !errors.Is(err, ErrPayload) {
			t.Errorf("ParseStored(%x) err = %v", b, err)
		}
	}
}

func FuzzParseStored(f *testing.F) {
	f.Add((&StoredMessage{Payload: []byte("x")}).AppendTo(nil))
	f.Add((&StoredMessage{Reply: true, Payload: []byte("y")}).AppendTo(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseStored(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.AppendTo(nil), b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func FuzzSplitForward(f *testing.F) {
	g := sphinx.DefaultGeometry()
	p, _ := PackForward(g, make([]byte, g.SURBLength), []byte("x"))
	f.Add(p)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = SplitForward(g, b)
	})
}

func TestMailboxIDsDiffer(t *testing.T) {
	pub := make([]byte, 32)
	if OwnMailbox(pub) == SURBMailbox([16]byte{}) || OwnMailbox(pub) == DropRecipient {
		t.Fatal("mailbox derivations collide")
	}
}
