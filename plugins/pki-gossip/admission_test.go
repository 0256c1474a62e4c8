package pkigossip

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces"
)

func rootKey(i int) ed25519.PrivateKey {
	s := sha256.Sum256(fmt.Appendf(nil, "root %d", i))
	return ed25519.NewKeyFromSeed(s[:])
}

func publicKeys(keys ...ed25519.PrivateKey) [][]byte {
	var out [][]byte
	for _, k := range keys {
		out = append(out, k.Public().(ed25519.PublicKey))
	}
	return out
}

// endorsementProof encodes endorsements as a proof, as prove does.
func endorsementProof(es ...Endorsement) []byte {
	p := []byte{byte(len(es))}
	for _, e := range es {
		p = append(p, e.Root...)
		p = binary.BigEndian.AppendUint64(p, uint64(e.NotAfter.Unix()))
		p = append(p, e.Signature...)
	}
	return p
}

func TestEndorsedAdmitsKOfNTrustedRootsUntilExpiry(t *testing.T) {
	genesis := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock, _ := epoch.New(genesis, time.Minute, 0)
	r0, r1, r2, stranger := rootKey(0), rootKey(1), rootKey(2), rootKey(9)
	cfg := Config{Network: "testnet", Admission: Admission{Policy: "endorsed", Endorsed: EndorsedPolicy{
		Roots: publicKeys(r0, r1, r2), Threshold: 2}}}
	pol, _ := newEndorsedPolicy(&cfg, clock)
	const e = 10 // ends at genesis + 11 min
	n := newNode(1, interfaces.RoleMix)
	sd := n.descriptor(t, "testnet", e, 0)
	id := sd.Descriptor.Identity
	later := genesis.Add(time.Hour)
	endorse := func(root ed25519.PrivateKey, notAfter time.Time) Endorsement {
		return Endorse(root, "testnet", id, interfaces.RoleMix, notAfter)
	}
	other := newNode(2, interfaces.RoleMix).descriptor(t, "testnet", e, 0).Descriptor.Identity
	tests := []struct {
		name  string
		proof []byte
		ok    bool
	}{
		{"two distinct trusted roots admit", endorsementProof(endorse(r0, later), endorse(r2, later)), true},
		{"three trusted roots admit", endorsementProof(endorse(r0, later), endorse(r1, later), endorse(r2, later)), true},
		{"an expiry exactly at the epoch's end admits", endorsementProof(endorse(r0, clock.End(e)), endorse(r1, later)), true},
		{"one trusted root is not enough", endorsementProof(endorse(r0, later)), false},
		{"the same root twice counts once", endorsementProof(endorse(r0, later), endorse(r0, later.Add(time.Second))), false},
		{"a root the network does not trust does not count", endorsementProof(endorse(r0, later), endorse(stranger, later)), false},
		{"an endorsement expiring within the epoch does not count", endorsementProof(endorse(r0, later), endorse(r1, clock.End(e).Add(-time.Second))), false},
		{"another identity's endorsements are forgeries here", endorsementProof(
			Endorse(r0, "testnet", other, interfaces.RoleMix, later), Endorse(r1, "testnet", other, interfaces.RoleMix, later)), false},
		{"endorsements for another role are forgeries here", endorsementProof(
			Endorse(r0, "testnet", id, interfaces.RoleProvider, later), Endorse(r1, "testnet", id, interfaces.RoleProvider, later)), false},
		{"endorsements for another network are forgeries here", endorsementProof(
			Endorse(r0, "othernet", id, interfaces.RoleMix, later), Endorse(r1, "othernet", id, interfaces.RoleMix, later)), false},
		{"no proof is refused", nil, false},
		{"a count of zero is refused", []byte{0}, false},
		{"a truncated proof is refused", endorsementProof(endorse(r0, later), endorse(r1, later))[:150], false},
		{"more than 16 endorsements are refused", append([]byte{17}, make([]byte, 17*endorsementLen)...), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pol.check(t.Context(), "", sd, tt.proof)
			if (err == nil) != tt.ok {
				t.Fatalf("error = %v, want admitted=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrNotAdmitted) {
				t.Fatalf("error %v does not wrap ErrNotAdmitted", err)
			}
		})
	}

	t.Run("a member proves with its own endorsements, and only enough of them", func(t *testing.T) {
		c := cfg
		c.Admission.Endorsed.Endorsements = []Endorsement{endorse(r0, later), endorse(r1, clock.End(e).Add(-time.Second)),
			Endorse(r2, "testnet", other, interfaces.RoleMix, later)}
		p, _ := newEndorsedPolicy(&c, clock)
		if _, err := p.prove(t.Context(), sd); !errors.Is(err, ErrNotAdmitted) {
			t.Fatalf("one covering endorsement of two needed: error %v", err)
		}
		c.Admission.Endorsed.Endorsements = append(c.Admission.Endorsed.Endorsements, endorse(r2, later))
		p, _ = newEndorsedPolicy(&c, clock)
		proof, err := p.prove(t.Context(), sd)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.check(t.Context(), "", sd, proof); err != nil {
			t.Fatalf("its own proof: %v", err)
		}
	})
}

// cheapOpen is an open policy cheap enough for tests: 64 KiB, 4 tries
// expected per identity.
func cheapOpen() OpenPolicy {
	o := OpenPolicy{MemoryKiB: 64, Difficulty: 2}
	o.setDefaults()
	return o
}

func TestOpenProofBindsNetworkEpochAndIdentity(t *testing.T) {
	clock, _ := epoch.New(time.Now(), time.Minute, 0)
	cfg := Config{Network: "testnet", Admission: Admission{Policy: "open", Open: cheapOpen()}}
	cfg.Admission.Open.Difficulty = 6 // a stray nonce passes with 1/64
	p, _ := newOpenPolicy(&cfg, clock)
	defer p.close()
	n := newNode(1, interfaces.RoleMix)
	sd := n.descriptor(t, "testnet", 5, 0)
	proof, err := p.prove(t.Context(), sd)
	if err != nil {
		t.Fatal(err)
	}
	rank, err := p.check(t.Context(), "", sd, proof)
	if err != nil || leadingZeroBits(rank) < 6 {
		t.Fatalf("own proof: rank %x, err %v", rank, err)
	}
	again, err := p.prove(t.Context(), sd)
	if err != nil || !bytes.Equal(again, proof) {
		t.Fatal("a second Publish of the same descriptor did not reuse the proof")
	}
	// The same nonce, for a different statement, is worthless (these
	// seeds were checked to fail; a stray pass would be deterministic).
	for name, other := range map[string]*interfaces.SignedDescriptor{
		"another epoch":    n.descriptor(t, "testnet", 6, 0),
		"another identity": newNode(2, interfaces.RoleMix).descriptor(t, "testnet", 5, 0),
		"another network":  n.descriptor(t, "othernet", 5, 0),
	} {
		if _, err := p.check(t.Context(), "", other, proof); !errors.Is(err, ErrNotAdmitted) {
			t.Errorf("%s: error %v, want not admitted", name, err)
		}
	}
	if _, err := p.check(t.Context(), "", sd, proof[:7]); !errors.Is(err, ErrNotAdmitted) {
		t.Errorf("short proof: %v", err)
	}
}

func TestOpenChecksAtMostTheSourceRate(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newSourceLimiter(0.5, 3, func() time.Time { return now })
	for i := range 3 {
		if !l.allow("a") {
			t.Fatalf("burst: check %d refused", i)
		}
	}
	if l.allow("a") {
		t.Fatal("a fourth check within the burst was allowed")
	}
	if !l.allow("b") {
		t.Fatal("another source was refused")
	}
	now = now.Add(2 * time.Second) // one token back at 0.5/s
	if !l.allow("a") || l.allow("a") {
		t.Fatal("the bucket did not refill at its rate")
	}
	// Idle buckets are swept rather than kept forever.
	for i := range maxSources + 10 {
		l.allow(fmt.Sprint("s", i))
		now = now.Add(10 * time.Second)
	}
	if l.table.Len() > maxSources {
		t.Fatalf("%d buckets kept", l.table.Len())
	}
}

// startAdmissionMembers starts n members configured with adm and returns
// them with the epoch to publish for (early in the window, so that the test
// has two epochs before it closes).
func startAdmissionMembers(t *testing.T, n int, adm Admission, seed uint64) ([]*Member, Config, uint64) {
	t.Helper()
	cfg := testConfig(time.Now(), time.Minute)
	cfg.Admission = adm
	members := startMembers(t, n, cfg, seed)
	return members, cfg, members[0].Clock().Now() + 1
}

// sybils returns count fresh identities' descriptors for epoch e.
func sybils(t *testing.T, e uint64, count int) []*interfaces.SignedDescriptor {
	out := make([]*interfaces.SignedDescriptor, count)
	for i := range out {
		out[i] = newNode(uint64(10_000+i), interfaces.RoleMix).descriptor(t, "testnet", e, 0)
	}
	return out
}

func held(m *Member, e uint64, ids map[string]bool) (n int) {
	for _, raw := range docNodes(m, e) {
		sd, _ := interfaces.ParseSignedDescriptor(raw)
		if ids[string(sd.Descriptor.Identity)] {
			n++
		}
	}
	return n
}

func identities(sds []*interfaces.SignedDescriptor) map[string]bool {
	out := map[string]bool{}
	for _, sd := range sds {
		out[string(sd.Descriptor.Identity)] = true
	}
	return out
}

// flood sends msgs from one attacking host to members[0] and returns, once
// member 0 has judged them all (admitted or ignored: none is malformed),
// when the first was sent.
func flood(t *testing.T, cfg Config, members []*Member, msgs [][]byte) time.Time {
	t.Helper()
	att := newAttacker(t, cfg, members[0])
	base := members[0].Stats()
	start := time.Now()
	for _, m := range msgs {
		att.send(t, m)
	}
	waitFor(t, fmt.Sprintf("member 0 to judge all %d", len(msgs)), 60*time.Second, func() bool {
		st := members[0].Stats()
		return st.Accepted+st.Ignored-base.Accepted-base.Ignored >= uint64(len(msgs))
	}, members...)
	return start
}

// The attack of issue 23, item 3: one host makes 300 identities and
// publishes them. Under "endorsed" none is admitted or relayed; under
// "open" no member admits more than the documented bound.
func TestThreeHundredIdentitiesFromOneHost(t *testing.T) {
	const attackers = 300
	t.Run("endorsed admits none of them", func(t *testing.T) {
		roots := []ed25519.PrivateKey{rootKey(0), rootKey(1), rootKey(2)}
		honest := rolesFor(3)
		later := time.Now().Add(time.Hour)
		adm := Admission{Policy: "endorsed", Endorsed: EndorsedPolicy{Roots: publicKeys(roots...), Threshold: 2}}
		for _, n := range honest {
			for _, r := range roots[:2] {
				adm.Endorsed.Endorsements = append(adm.Endorsed.Endorsements,
					Endorse(r, "testnet", n.key.Public().(ed25519.PublicKey), n.role, later))
			}
		}
		members, cfg, e := startAdmissionMembers(t, 3, adm, 21)
		publishAll(t, members, honest, e, 0)
		waitConverged(t, members, e, len(honest), 20*time.Second)

		att := newAttacker(t, cfg, members[0])
		base := members[0].Stats()
		own := []ed25519.PrivateKey{rootKey(7), rootKey(8)} // roots of its own making
		stolen := adm.Endorsed.Endorsements[:2]             // honest node 0's, by two trusted roots
		sds := sybils(t, e, attackers)
		for i, sd := range sds {
			id := sd.Descriptor.Identity
			var msg []byte
			switch i % 4 {
			case 0: // no endorsement at all
				msg = encodeMessage(kindEndorsed, sd.Raw, nil)
			case 1: // as if the network admitted anyone
				msg = msgOf(sd)
			case 2: // two endorsements by roots nobody trusts
				msg = encodeMessage(kindEndorsed, sd.Raw, endorsementProof(
					Endorse(own[0], "testnet", id, interfaces.RoleMix, later), Endorse(own[1], "testnet", id, interfaces.RoleMix, later)))
			case 3: // an honest node's real endorsements, replayed
				msg = encodeMessage(kindEndorsed, sd.Raw, endorsementProof(stolen...))
			}
			att.send(t, msg)
		}
		waitFor(t, "member 0 to judge all 300", 60*time.Second, func() bool {
			return members[0].Stats().NotAdmitted-base.NotAdmitted >= attackers
		}, members...)
		bad := identities(sds)
		for i, m := range members {
			if n := held(m, e, bad); n != 0 {
				t.Fatalf("member %d admitted %d of the %d identities", i, n, attackers)
			}
			if got := len(docNodes(m, e)); got != len(honest) {
				t.Fatalf("member %d holds %d nodes, want the %d honest ones", i, got, len(honest))
			}
		}
		for i, m := range members[1:] {
			if st := m.Stats(); st.Rejected != 0 {
				t.Fatalf("member %d saw %d refused messages: member 0 relayed them", i+1, st.Rejected)
			}
		}
		t.Logf("member 0 refused %d messages, none relayed", members[0].Stats().NotAdmitted-base.NotAdmitted)
	})

	// solved returns each descriptor's message with a valid proof of work.
	solved := func(t *testing.T, o OpenPolicy, sds []*interfaces.SignedDescriptor) [][]byte {
		out := make([][]byte, len(sds))
		for i, sd := range sds {
			proof, _, err := o.Solve(t.Context(), "testnet", sd.Descriptor.Epoch, sd.Descriptor.Identity)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = encodeMessage(kindOpen, sd.Raw, proof)
		}
		return out
	}

	t.Run("open admits no more than max_per_epoch, and every member the same ones", func(t *testing.T) {
		o := cheapOpen()
		o.MaxPerEpoch, o.SourceBurst = 16, 10_000 // only the epoch cap binds
		members, cfg, e := startAdmissionMembers(t, 3, Admission{Policy: "open", Open: o}, 22)
		publishAll(t, members, rolesFor(3), e, 0)
		waitConverged(t, members, e, 3, 20*time.Second)

		sds := sybils(t, e, attackers)
		flood(t, cfg, members, solved(t, o, sds)) // the price, paid in full
		waitConverged(t, members, e, o.MaxPerEpoch, 30*time.Second)
		bad := identities(sds)
		for i, m := range members {
			if n := held(m, e, bad); n > o.MaxPerEpoch {
				t.Fatalf("member %d admitted %d, bound %d", i, n, o.MaxPerEpoch)
			}
		}
		t.Logf("every member holds the same %d of 303 paid-for identities (%d of them the attacker's)",
			o.MaxPerEpoch, held(members[0], e, bad))
	})

	t.Run("open checks no more than the source's rate from one host", func(t *testing.T) {
		o := cheapOpen()
		o.SourceRate, o.SourceBurst = 0.5, 8 // only the source rate binds
		members, cfg, e := startAdmissionMembers(t, 3, Admission{Policy: "open", Open: o}, 23)
		sds := sybils(t, e, attackers)
		base := members[0].Stats()
		start := flood(t, cfg, members, solved(t, o, sds))
		bound := o.SourceBurst + int(math.Ceil(o.SourceRate*time.Since(start).Seconds()))
		bad := identities(sds)
		got := held(members[0], e, bad)
		if got == 0 || got > bound {
			t.Fatalf("member 0 admitted %d of %d; bound burst + rate × %v = %d", got, attackers, time.Since(start).Round(time.Millisecond), bound)
		}
		if th := members[0].Stats().Throttled - base.Throttled; th < uint64(attackers-bound) {
			t.Fatalf("only %d messages throttled", th)
		}
		t.Logf("member 0 admitted %d of %d (bound %d), throttled %d", got, attackers, bound, members[0].Stats().Throttled-base.Throttled)
	})
}

// Publish under "open" returns while the proof is still being searched for
// (the host's deadline is short) and succeeds once it is found.
func TestOpenPublishOutlastsTheCallersDeadline(t *testing.T) {
	o := cheapOpen()
	o.Difficulty = 12 // thousands of evaluations: longer than the first deadline
	members, _, e := startAdmissionMembers(t, 1, Admission{Policy: "open", Open: o}, 24)
	// A ticket is found in one evaluation with probability 2^-12, so now
	// and then one comes within the first millisecond (CI saw it): that
	// descriptor is simply published, and the next node is tried.
	var sd *interfaces.SignedDescriptor
	lucky := 0
	for seed := uint64(1); sd == nil; seed++ {
		if seed > 10 {
			t.Fatalf("%d publishes in a row found their ticket within 1 ms at difficulty 12", lucky)
		}
		d := newNode(seed, interfaces.RoleMix).descriptor(t, "testnet", e, 0)
		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		_, err := members[0].Publish(ctx, &interfaces.PublishRequest{Descriptor: d})
		cancel()
		switch {
		case err == nil:
			lucky++
		case errors.Is(err, context.DeadlineExceeded):
			sd = d
		default:
			t.Fatalf("first publish: %v, want the deadline", err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if _, err := members[0].Publish(ctx, &interfaces.PublishRequest{Descriptor: sd}); err != nil {
		t.Fatal(err)
	}
	if n := len(docNodes(members[0], e)); n != lucky+1 {
		t.Fatalf("%d descriptors held after the publish, want %d", n, lucky+1)
	}
}

// A member under "open" restarted on its state_dir serves the same
// document, taking the stored tickets instead of paying an evaluation per
// record; a stored ticket below the difficulty is checked again.
func TestOpenMemberRestoresItsState(t *testing.T) {
	o := cheapOpen()
	cfg := testConfig(time.Now(), time.Minute)
	cfg.Admission = Admission{Policy: "open", Open: o}
	cfg.StateDir = t.TempDir()
	m, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := m.Clock().Now() + 1
	for _, n := range rolesFor(3) {
		if _, err := m.Publish(t.Context(), &interfaces.PublishRequest{Descriptor: n.descriptor(t, "testnet", e, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	before, err := m.Document(t.Context(), &interfaces.DocumentRequest{Epoch: e})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	again, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	after, err := again.Document(t.Context(), &interfaces.DocumentRequest{Epoch: e})
	if err != nil || after.Hash != before.Hash {
		t.Fatalf("after restart: err %v, same hash %v", err, err == nil && after.Hash == before.Hash)
	}

	sd := newNode(50, interfaces.RoleMix).descriptor(t, "testnet", e, 0)
	good := make([]byte, 32) // all zero bits: meets any difficulty
	if r, err := again.policy.restore(t.Context(), sd, []byte{1, 2, 3, 4, 5, 6, 7, 8}, good); err != nil || !bytes.Equal(r, good) {
		t.Fatalf("a stored ticket was not taken: %v", err)
	}
	weak := bytes.Repeat([]byte{0xff}, 32)
	if _, err := again.policy.restore(t.Context(), sd, []byte{1, 2, 3, 4, 5, 6, 7, 8}, weak); !errors.Is(err, ErrNotAdmitted) {
		t.Fatalf("a stored ticket below the difficulty: error %v, want the proof checked and refused", err)
	}
}
