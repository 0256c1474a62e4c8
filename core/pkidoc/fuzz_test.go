package pkidoc

import (
	"bytes"
	"testing"
	"time"
)

func FuzzParseSignedDescriptor(f *testing.F) {
	d, k := testDescriptor(1, 9, RoleMix)
	f.Add(mustSign(f, d, k).Raw)
	d.Accounting = []byte{1, 2, 3}
	f.Add(mustSign(f, d, k).Raw)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		sd, err := ParseSignedDescriptor(raw)
		if err != nil {
			return
		}
		// Canonical form only: what we accept re-encodes to the same bytes.
		body, err := sd.Descriptor.encodeBody()
		if err != nil || !bytes.Equal(body, raw[:len(raw)-64]) {
			t.Fatalf("accepted a non-canonical descriptor (err %v)", err)
		}
	})
}

func FuzzParseDocument(f *testing.F) {
	enc, err := testDocument(f, 3).Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	empty, _ := (&Document{Network: "n", Epoch: 1, Params: testParams()}).Encode()
	f.Add(empty)
	down := testParams()
	down.DownstreamInterval, down.DownstreamSlots = 80*time.Millisecond, 2
	v3, _ := (&Document{Network: "n", Epoch: 1, Params: down}).Encode()
	f.Add(v3)
	f.Fuzz(func(t *testing.T, raw []byte) {
		doc, err := ParseDocument(raw)
		if err != nil {
			return
		}
		again, err := doc.Encode()
		if err != nil || !bytes.Equal(again, raw) {
			t.Fatalf("accepted a non-canonical document (err %v)", err)
		}
	})
}
