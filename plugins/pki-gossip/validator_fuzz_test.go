package pkigossip

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
)

// The gossip validator past the descriptor parse: the fuzzer signs real
// descriptors (so every message parses and verifies) with fuzzed network,
// epoch, role and keys, wraps them with a fuzzed admission kind and proof,
// optionally flips one byte of the signed bytes, and hands them to a live
// member's validator under the "open" policy (a cheap proof of work, so
// the fuzzer reaches the proof check). Whatever arrives, the validator
// answers without panicking; a message it accepts is for this network, in
// the epoch window and of the policy's kind; and the member's document for
// that epoch still encodes and hashes.
func FuzzValidatorPastParse(f *testing.F) {
	f.Add(uint8(1), int8(0), uint8(0), byte(0), kindOpen, []byte{}, false, uint16(0))
	f.Add(uint8(2), int8(1), uint8(1), byte(1), kindNone, []byte{1, 2, 3}, false, uint16(0))
	f.Add(uint8(3), int8(-2), uint8(0), byte(2), kindOpen, make([]byte, 40), true, uint16(5))
	f.Add(uint8(4), int8(5), uint8(1), byte(3), kindEndorsed, []byte{0xff}, false, uint16(300))
	cfg := testConfig(time.Now().Add(-30*time.Second), time.Minute)
	cfg.Admission = Admission{Policy: "open", Open: cheapOpen()}
	m := startMembers(f, 1, cfg, 1)[0]
	now := m.Clock().Now()
	f.Fuzz(func(t *testing.T, who uint8, de int8, role uint8, rot, kind byte, proof []byte, otherNet bool, flip uint16) {
		network := cfg.Network
		if otherNet {
			network = "othernet"
		}
		e := uint64(int64(now) + int64(de%8))
		n := newNode(uint64(who), interfaces.RoleMix)
		if role%2 == 1 {
			n.role = interfaces.RoleProvider
		}
		sd := n.descriptor(t, network, e, rot)
		raw := append([]byte(nil), sd.Raw...)
		if flip != 0 {
			raw[int(flip)%len(raw)] ^= byte(flip >> 8)
		}
		msg := encodeMessage(kind, raw, proof)
		v, err := m.ingest(context.Background(), msg, "fuzz")
		_ = m.judge(v, err, "")
		if err != nil {
			return
		}
		if v != verdictNew && v != verdictEquivocation {
			return
		}
		if network != cfg.Network || kind != kindOpen {
			t.Fatalf("accepted a descriptor for network %q with admission kind %d", network, kind)
		}
		if werr := interfaces.CheckEpochWindow(e, m.Clock().Now(), m.cfg.Ahead); werr != nil {
			t.Fatalf("accepted a descriptor outside the window: %v", werr)
		}
		r, derr := m.Document(context.Background(), &interfaces.DocumentRequest{Epoch: e})
		if derr != nil && !errors.Is(derr, interfaces.ErrNotFound) {
			t.Fatalf("document for epoch %d after accepting: %v", e, derr)
		}
		if derr == nil {
			if _, herr := r.Document.Hash(); herr != nil {
				t.Fatalf("document no longer hashes: %v", herr)
			}
		}
	})
}
