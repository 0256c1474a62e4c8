package pkidoc

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var updatePKI = flag.Bool("update", false, "rewrite golden files under testdata/")

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func testDescriptor(seed byte, epoch uint64, role Role) (*Descriptor, ed25519.PrivateKey) {
	k := testKey(seed)
	d := &Descriptor{
		Network:  "testnet",
		Epoch:    epoch,
		Identity: k.Public().(ed25519.PublicKey),
		PeerID:   PeerIDOf(k.Public().(ed25519.PublicKey)),
		Addrs:    [][]byte{{0x04, 127, 0, 0, 1, 0x06, 0x1f, 0x90}},
		Role:     role,
	}
	for i := range d.SphinxKeys {
		d.SphinxKeys[i] = sha256.Sum256([]byte{seed, byte(epoch), byte(i)})
	}
	return d, k
}

func mustSign(t testing.TB, d *Descriptor, k ed25519.PrivateKey) *SignedDescriptor {
	t.Helper()
	sd, err := SignDescriptor(d, k)
	if err != nil {
		t.Fatal(err)
	}
	return sd
}

func testParams() NetworkParams {
	return NetworkParams{Hops: 3, PayloadLen: 2048, Layers: 3, Mu: 2, LambdaP: 1, LambdaL: 0.5, LambdaD: 0.5, LambdaM: 0.25, EpochPeriod: 20 * time.Minute,
		Genesis: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), EpochGrace: 2 * time.Minute}
}

func TestDescriptorRoundTrip(t *testing.T) {
	d, k := testDescriptor(1, 7, RoleMix)
	d.Accounting = []byte("channel-id")
	sd := mustSign(t, d, k)
	got, err := ParseSignedDescriptor(sd.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Raw, sd.Raw) || got.Descriptor.Epoch != 7 || string(got.Descriptor.Accounting) != "channel-id" {
		t.Fatalf("round trip changed the descriptor: %+v", got.Descriptor)
	}
}

// A descriptor's peer ID is bound to its identity, and its addresses must
// be multiaddrs a node can dial: one member cannot publish an entry every
// other member's routing would choke on.
func TestValidateBindsPeerIDAndAddresses(t *testing.T) {
	other, _ := testDescriptor(9, 1, RoleMix)
	for _, tc := range []struct {
		name string
		edit func(d *Descriptor)
		ok   bool
	}{
		{"the identity's own peer ID and a tcp address", func(d *Descriptor) {}, true},
		{"quic, ws and dns addresses", func(d *Descriptor) {
			d.Addrs = [][]byte{
				{0x04, 127, 0, 0, 1, 0x91, 0x02, 0x1f, 0x90, 0xcd, 0x03}, // /ip4/…/udp/8080/quic-v1
				{0x04, 127, 0, 0, 1, 0x06, 0x1f, 0x90, 0xdd, 0x03},       // /ip4/…/tcp/8080/ws
				append(append([]byte{0x36, 9}, "localhost"...), 0x06, 0x1f, 0x90),
			}
		}, true},
		{"a peer ID of one byte", func(d *Descriptor) { d.PeerID = []byte{1} }, false},
		{"another identity's peer ID", func(d *Descriptor) { d.PeerID = other.PeerID }, false},
		{"an address of an unknown protocol", func(d *Descriptor) { d.Addrs = [][]byte{{0x7f, 1, 2}} }, false},
		{"an ip4 address cut short", func(d *Descriptor) { d.Addrs = [][]byte{{0x04, 127, 0}} }, false},
		{"a dns name longer than the address", func(d *Descriptor) { d.Addrs = [][]byte{{0x36, 40, 'a'}} }, false},
		{"a bad varint", func(d *Descriptor) { d.Addrs = [][]byte{{0x80}} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, k := testDescriptor(2, 1, RoleMix)
			tc.edit(d)
			err := d.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate = %v, want ok %v", err, tc.ok)
			}
			if _, serr := SignDescriptor(d, k); (serr == nil) != tc.ok {
				t.Fatalf("SignDescriptor = %v, want ok %v", serr, tc.ok)
			}
			if !tc.ok && !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestDescriptorRejects(t *testing.T) {
	d, k := testDescriptor(2, 1, RoleProvider)
	good := mustSign(t, d, k).Raw
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	other, _ := testDescriptor(3, 1, RoleProvider)
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"a flipped signature bit is a bad signature", flip(len(good) - 1), ErrBadSignature},
		{"a flipped epoch bit is a bad signature", flip(1 + 1 + len("testnet") + 7), ErrBadSignature},
		{"trailing bytes are malformed", append(bytes.Clone(good), 0), ErrMalformed},
		{"a truncated descriptor is malformed", good[:len(good)-65], ErrMalformed},
		{"an empty input is malformed", nil, ErrMalformed},
		{"an oversized input is malformed", make([]byte, MaxDescriptorSize+1), ErrMalformed},
		{"an unknown version is malformed", flip(0), ErrMalformed},
		{"a descriptor signed by another key is a bad signature", func() []byte {
			o := *other
			o.Identity, o.PeerID = d.Identity, d.PeerID
			body, _ := o.encodeBody()
			return append(body, ed25519.Sign(testKey(3), append([]byte(descriptorSigLabel), body...))...)
		}(), ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSignedDescriptor(tt.raw)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("error = %v, want %v (and ErrInvalidArgument)", err, tt.want)
			}
		})
	}
}

func TestSignDescriptorRefusesBadFields(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Descriptor)
	}{
		{"an empty network", func(d *Descriptor) { d.Network = "" }},
		{"no addresses", func(d *Descriptor) { d.Addrs = nil }},
		{"too many addresses", func(d *Descriptor) { d.Addrs = make([][]byte, MaxAddrs+1) }},
		{"an unknown role", func(d *Descriptor) { d.Role = 9 }},
		{"oversized accounting info", func(d *Descriptor) { d.Accounting = make([]byte, MaxAccountingLen+1) }},
		{"a key that is not the identity's", func(d *Descriptor) { d.Identity = testKey(99).Public().(ed25519.PublicKey) }},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			d, k := testDescriptor(4, 1, RoleMix)
			tt.mutate(d)
			if _, err := SignDescriptor(d, k); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("error = %v, want ErrInvalidArgument", err)
			}
		})
	}
}

func TestCheckEpochWindow(t *testing.T) {
	tests := []struct {
		name             string
		desc, now, ahead uint64
		ok               bool
	}{
		{"the current epoch is accepted", 10, 10, 2, true},
		{"the next epochs within the window are accepted", 12, 10, 2, true},
		{"an expired epoch is refused", 9, 10, 2, false},
		{"an epoch beyond the window is refused", 13, 10, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckEpochWindow(tt.desc, tt.now, tt.ahead)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrEpochWindow)) {
				t.Fatalf("error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func testDocument(t testing.TB, n int) *Document {
	t.Helper()
	var nodes []*SignedDescriptor
	for i := range n {
		role := RoleMix
		if i%5 == 0 {
			role = RoleProvider
		}
		d, k := testDescriptor(byte(i+10), 5, role)
		nodes = append(nodes, mustSign(t, d, k))
	}
	doc, err := NewDocument("testnet", 5, testParams(), nodes)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestDocumentRoundTripAndHash(t *testing.T) {
	doc := testDocument(t, 12)
	enc, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseDocument(enc)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := doc.Hash()
	h2, _ := got.Hash()
	if h1 != h2 || h1 != sha256.Sum256(enc) {
		t.Fatal("hash changed across a round trip")
	}
	// The same descriptors handed over in reverse give the same document.
	rev := make([]*SignedDescriptor, len(doc.Nodes))
	for i, n := range doc.Nodes {
		rev[len(rev)-1-i] = n
	}
	doc2, err := NewDocument("testnet", 5, testParams(), rev)
	if err != nil {
		t.Fatal(err)
	}
	if h3, _ := doc2.Hash(); h3 != h1 {
		t.Fatal("document hash depends on input order")
	}
}

func TestDocumentRejects(t *testing.T) {
	doc := testDocument(t, 4)
	enc, _ := doc.Encode()
	wrongEpoch, k := testDescriptor(50, 6, RoleMix)
	tests := []struct {
		name  string
		build func() ([]byte, error)
	}{
		{"trailing bytes", func() ([]byte, error) { return append(bytes.Clone(enc), 1), nil }},
		{"a truncated document", func() ([]byte, error) { return enc[:len(enc)-3], nil }},
		{"nodes out of order", func() ([]byte, error) {
			d := *doc
			d.Nodes = []*SignedDescriptor{doc.Nodes[1], doc.Nodes[0]}
			var w pkiWriter
			b, _ := (&Document{Network: d.Network, Epoch: d.Epoch, Params: d.Params}).Encode()
			w.b = b[:len(b)-2]
			w.u16(2)
			w.bytes16(d.Nodes[0].Raw)
			w.bytes16(d.Nodes[1].Raw)
			return w.b, nil
		}},
		{"a NaN rate", func() ([]byte, error) {
			b := bytes.Clone(enc)
			off := 1 + 1 + len("testnet") + 8 + 1 + 4 + 1
			copy(b[off:], []byte{0x7f, 0xf8, 0, 0, 0, 0, 0, 1})
			return b, nil
		}},
		{"a descriptor for another epoch", func() ([]byte, error) {
			d := *doc
			d.Nodes = append(d.Nodes, mustSign(t, wrongEpoch, k))
			return d.Encode()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			b, err := tt.build()
			if err == nil {
				_, err = ParseDocument(b)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error = %v, want ErrMalformed", err)
			}
		})
	}
	dup := append([]*SignedDescriptor{}, doc.Nodes...)
	dup = append(dup, doc.Nodes[0])
	if _, err := NewDocument("testnet", 5, testParams(), dup); !errors.Is(err, ErrMalformed) {
		t.Fatalf("two descriptors for one identity: error = %v", err)
	}
}

func TestLayersAreDeterministicAndBalanced(t *testing.T) {
	doc := testDocument(t, 20) // 16 mixes, 4 providers
	a, b := doc.Layers(), doc.Layers()
	if len(a) != 3 {
		t.Fatalf("%d layers, want 3", len(a))
	}
	total := 0
	for i := range a {
		if len(a[i]) < 5 || len(a[i]) > 6 {
			t.Fatalf("layer %d holds %d mixes, want 5 or 6", i, len(a[i]))
		}
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				t.Fatal("layer assignment differs between two calls")
			}
		}
		total += len(a[i])
	}
	if total != 16 || len(doc.Providers()) != 4 {
		t.Fatalf("%d mixes, %d providers", total, len(doc.Providers()))
	}
}

func TestEquivocationVerify(t *testing.T) {
	d, k := testDescriptor(7, 3, RoleMix)
	a := mustSign(t, d, k)
	d.Addrs = [][]byte{{0x04, 10, 0, 0, 1, 0x06, 0, 80}}
	b := mustSign(t, d, k)
	if err := (Equivocation{A: a, B: b}).Verify(); err != nil {
		t.Fatalf("real evidence: %v", err)
	}
	if err := (Equivocation{A: a, B: a}).Verify(); err == nil {
		t.Fatal("identical descriptors accepted as evidence")
	}
}

// TestVectors pins the encodings: a change to the wire format must be
// deliberate (go test ./core/pkidoc -run Vectors -update).
func TestVectors(t *testing.T) {
	doc := testDocument(t, 3)
	enc, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(enc)
	got := "descriptor " + hex.EncodeToString(doc.Nodes[0].Raw) + "\ndocument-sha256 " + hex.EncodeToString(h[:]) + "\n"
	path := filepath.Join("testdata", "pki_vectors.golden")
	if *updatePKI {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(want)) != strings.TrimSpace(got) {
		t.Fatalf("encoding changed:\n got %s\nwant %s", got, want)
	}
}

func TestSphinxKeyForEpoch(t *testing.T) {
	d, _ := testDescriptor(8, 10, RoleMix)
	tests := []struct {
		name  string
		epoch uint64
		want  int // index into SphinxKeys, -1 for none
	}{
		{"the descriptor's own epoch uses the first key", 10, 0},
		{"two epochs on uses the third key", 12, 2},
		{"an epoch before the descriptor has no key", 9, -1},
		{"three epochs on has no key", 13, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, ok := d.SphinxKey(tt.epoch)
			if ok != (tt.want >= 0) || (ok && k != d.SphinxKeys[tt.want]) {
				t.Fatalf("SphinxKey(%d) = %x, %v", tt.epoch, k[:4], ok)
			}
		})
	}
}

// The epoch clock travels in the document, so a client learns it from the
// network; a document that does not state it stays valid.
func TestTheDocumentCarriesTheEpochClock(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(p *NetworkParams)
		ok   bool
	}{
		{"a stated clock", func(p *NetworkParams) {}, true},
		{"no clock stated", func(p *NetworkParams) { p.Genesis, p.EpochGrace = time.Time{}, 0 }, true},
		{"a grace as long as the period", func(p *NetworkParams) { p.EpochGrace = p.EpochPeriod }, false},
		{"a negative grace", func(p *NetworkParams) { p.EpochGrace = -1 }, false},
		{"a genesis before 1970", func(p *NetworkParams) { p.Genesis = time.Unix(-5, 0) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, k := testDescriptor(1, 9, RoleMix)
			p := testParams()
			tc.edit(&p)
			doc, err := NewDocument("testnet", 9, p, []*SignedDescriptor{mustSign(t, d, k)})
			if !tc.ok {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			raw, err := doc.Encode()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseDocument(raw)
			if err != nil {
				t.Fatal(err)
			}
			got := back.Params
			if got.HasClock() != p.HasClock() || !got.Genesis.Equal(p.Genesis) || got.EpochGrace != p.EpochGrace || got.EpochPeriod != p.EpochPeriod {
				t.Fatalf("clock %v/%v/%v after a round trip, want %v/%v/%v", got.Genesis, got.EpochPeriod, got.EpochGrace, p.Genesis, p.EpochPeriod, p.EpochGrace)
			}
		})
	}
}

// MaxDocumentSize's fixed part is the largest encoding of the fields
// before the nodes.
func TestTheDocumentFixedPartIsTheEncodings(t *testing.T) {
	p := testParams()
	p.DownstreamInterval, p.DownstreamSlots = time.Second, 2
	doc := &Document{Network: strings.Repeat("n", MaxNetworkLen), Epoch: 1, Params: p}
	raw, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != documentFixedSize {
		t.Fatalf("a document with no nodes and the longest network name encodes to %d bytes, documentFixedSize is %d", len(raw), documentFixedSize)
	}
}

// A document that states the downstream survives a round trip as version
// 3; one that does not keeps version 2 (and its old hash); version 3
// stating nothing, and bounds out of range, are refused.
func TestDocumentsStateTheDownstream(t *testing.T) {
	p := testParams()
	doc := &Document{Network: "n", Epoch: 1, Params: p}
	raw, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if raw[0] != documentVersion {
		t.Fatalf("a document without downstream encodes as version %d, want %d", raw[0], documentVersion)
	}
	iv, k := p.Downstream()
	if iv != DefaultDownstreamInterval || k < 1 {
		t.Fatalf("default downstream %v × %d", iv, k)
	}
	p.DownstreamInterval, p.DownstreamSlots = 250*time.Millisecond, 3
	doc.Params = p
	raw3, err := doc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if raw3[0] != documentVersionDownstream || len(raw3) != len(raw)+10 {
		t.Fatalf("version %d, %d bytes (v2: %d)", raw3[0], len(raw3), len(raw))
	}
	got, err := ParseDocument(raw3)
	if err != nil {
		t.Fatal(err)
	}
	if iv, k := got.Params.Downstream(); iv != 250*time.Millisecond || k != 3 {
		t.Fatalf("downstream %v × %d after a round trip", iv, k)
	}
	empty := slices.Clone(raw3)
	for i := len(raw) - 2; i < len(raw)+8; i++ {
		empty[i] = 0
	}
	if _, err := ParseDocument(empty); err == nil {
		t.Fatal("a version 3 document stating no downstream was accepted")
	}
	for _, bad := range []NetworkParams{
		{DownstreamInterval: time.Millisecond, DownstreamSlots: 1},
		{DownstreamInterval: time.Second, DownstreamSlots: 0},
		{DownstreamInterval: time.Second, DownstreamSlots: MaxDownstreamSlots + 1},
	} {
		q := testParams()
		q.DownstreamInterval, q.DownstreamSlots = bad.DownstreamInterval, bad.DownstreamSlots
		if err := q.Validate(); err == nil {
			t.Errorf("downstream %v × %d accepted", bad.DownstreamInterval, bad.DownstreamSlots)
		}
	}
}
