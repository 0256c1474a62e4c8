// Package pkitest is the conformance suite of the PKI plugin kind: any PKI
// implementation runs it (in process and over gRPC with OverGRPC) to show
// it keeps the contract of interfaces.PKI. The suite covers what every
// design must do; design-specific behaviour (how descriptors spread, how
// fast views converge) is tested by each plugin. The cases, by the names
// they run under:
//
//   - a document is for its epoch, verifies and hashes to what is reported
//   - an epoch far ahead has no document yet
//   - a nil or empty publication is an invalid argument
//   - a forged signature is refused
//   - a descriptor for another network is refused
//   - republishing a held descriptor is idempotent
//   - a published descriptor appears in the document, or is refused by a
//     closed design (Harness.Accepts)
//   - an equivocation is refused, reported as verifiable evidence and
//     excluded
//   - an epoch without misbehaviour has no evidence
//   - a cancelled call fails with the context's error and harms nothing
//   - concurrent readers see one document
//   - concurrent publications all appear (Accepts)
//   - a reopened PKI serves the same document (Harness.Reopen)
//
// To run it against a plugin's real binary, see plugintest.Build and
// plugintest.Process.
package pkitest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/plugintest"
)

// OverGRPC wraps a PKI in a real go-plugin gRPC connection in this process.
func OverGRPC(t testing.TB, p interfaces.PKI) interfaces.PKI {
	t.Helper()
	return plugintest.GRPC(t, interfaces.PKIKind, p).(interfaces.PKI)
}

// Harness is one fresh PKI under test and what the suite may assume of it.
type Harness struct {
	PKI     interfaces.PKI
	Network string
	// Epoch is an epoch for which PKI serves (or, after the publications
	// below, will serve) a document, and for which it accepts descriptors
	// if Accepts is set.
	Epoch uint64
	// Known are descriptors the PKI holds for Epoch from the start (a
	// static document's nodes); may be empty.
	Known []*interfaces.SignedDescriptor
	// Accepts says the design learns new descriptors through Publish (a
	// gossip PKI does, a static one does not: it must refuse them with an
	// error wrapping ErrInvalidArgument).
	Accepts bool
	// Settle is how long a published descriptor may take to appear in the
	// document (0: at once).
	Settle time.Duration
	// Reopen, if set, closes PKI (as its plugin process stopping would) and
	// returns it opened again on the same state (its files, its store): the
	// restart case checks it serves the same document.
	Reopen func(t *testing.T) interfaces.PKI
}

// Run runs the suite; open returns a fresh harness and arranges cleanup.
func Run(t *testing.T, open func(t *testing.T) *Harness) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

// NewDescriptor signs a fresh, valid descriptor for the harness's network
// and epoch from a seed (the same seed gives the same identity). alt
// changes the addresses, for a second, different descriptor.
func NewDescriptor(t testing.TB, network string, epoch uint64, seed string, alt bool) *interfaces.SignedDescriptor {
	t.Helper()
	s := sha256.Sum256([]byte("pkitest " + seed))
	key := ed25519.NewKeyFromSeed(s[:])
	id := key.Public().(ed25519.PublicKey)
	d := &interfaces.Descriptor{
		Network: network, Epoch: epoch, Identity: id,
		PeerID: interfaces.PeerIDOf(id),
		Addrs:  [][]byte{{0x04, 127, 0, 0, 1, 0x06, 0x1f, 0x90}},
		Role:   interfaces.RoleMix,
	}
	if alt {
		d.Addrs = [][]byte{{0x04, 127, 0, 0, 2, 0x06, 0x1f, 0x91}}
	}
	for i := range d.SphinxKeys {
		d.SphinxKeys[i] = sha256.Sum256(append(s[:], byte(i), byte(epoch)))
	}
	sd, err := interfaces.SignDescriptor(d, key)
	if err != nil {
		t.Fatal(err)
	}
	return sd
}

var cases = []struct {
	name string
	run  func(t *testing.T, h *Harness)
}{
	{"a document is for its epoch, verifies and hashes to what is reported", documentVerifies},
	{"an epoch far ahead has no document yet", farEpochNotFound},
	{"a nil or empty publication is an invalid argument", publishNothing},
	{"a forged signature is refused", publishForged},
	{"a descriptor for another network is refused", publishWrongNetwork},
	{"republishing a held descriptor is idempotent", publishIdempotent},
	{"a published descriptor appears in the document, or is refused by a closed design", publishAppears},
	{"an equivocation is refused, reported as verifiable evidence and excluded", equivocation},
	{"an epoch without misbehaviour has no evidence", noEvidence},
	{"a cancelled call fails with the context's error and harms nothing", cancelled},
	{"concurrent readers see one document", concurrentReaders},
	{"concurrent publications all appear", concurrentPublications},
	{"a reopened PKI serves the same document", reopened},
}

func document(t *testing.T, h *Harness, want func(*interfaces.Document) bool) *interfaces.DocumentResponse {
	t.Helper()
	deadline := time.Now().Add(h.Settle)
	for {
		r, err := h.PKI.Document(t.Context(), &interfaces.DocumentRequest{Epoch: h.Epoch})
		if err == nil && (want == nil || want(r.Document)) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("document for epoch %d: err %v (or not yet as expected)", h.Epoch, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func holds(d *interfaces.Document, sd *interfaces.SignedDescriptor) bool {
	for _, n := range d.Nodes {
		if bytes.Equal(n.Raw, sd.Raw) {
			return true
		}
	}
	return false
}

func documentVerifies(t *testing.T, h *Harness) {
	if h.Accepts && len(h.Known) == 0 {
		sd := NewDescriptor(t, h.Network, h.Epoch, "verifies", false)
		if _, err := h.PKI.Publish(t.Context(), &interfaces.PublishRequest{Descriptor: sd}); err != nil {
			t.Fatal(err)
		}
		h.Known = append(h.Known, sd)
	}
	r := document(t, h, func(d *interfaces.Document) bool {
		for _, k := range h.Known {
			if !holds(d, k) {
				return false
			}
		}
		return true
	})
	if r.Document.Epoch != h.Epoch || r.Document.Network != h.Network {
		t.Fatalf("document for %q epoch %d, want %q epoch %d", r.Document.Network, r.Document.Epoch, h.Network, h.Epoch)
	}
	enc, err := r.Document.Encode()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := interfaces.ParseDocument(enc)
	if err != nil {
		t.Fatalf("document does not re-parse: %v", err)
	}
	if got, _ := parsed.Hash(); got != r.Hash || got != sha256.Sum256(enc) {
		t.Fatal("reported hash is not SHA-256 of the canonical encoding")
	}
}

func farEpochNotFound(t *testing.T, h *Harness) {
	_, err := h.PKI.Document(t.Context(), &interfaces.DocumentRequest{Epoch: h.Epoch + 1000})
	if !errors.Is(err, interfaces.ErrNotFound) {
		t.Fatalf("error = %v, want ErrNotFound", err)
	}
}

func publishNothing(t *testing.T, h *Harness) {
	for _, req := range []*interfaces.PublishRequest{nil, {}, {Descriptor: &interfaces.SignedDescriptor{}}} {
		if _, err := h.PKI.Publish(t.Context(), req); !errors.Is(err, interfaces.ErrInvalidArgument) {
			t.Fatalf("Publish(%+v) error = %v, want ErrInvalidArgument", req, err)
		}
	}
}

func publishForged(t *testing.T, h *Harness) {
	sd := NewDescriptor(t, h.Network, h.Epoch, "forged", false)
	forged := &interfaces.SignedDescriptor{Descriptor: sd.Descriptor, Raw: bytes.Clone(sd.Raw)}
	forged.Raw[len(forged.Raw)-1] ^= 0x80
	if _, err := h.PKI.Publish(t.Context(), &interfaces.PublishRequest{Descriptor: forged}); !errors.Is(err, interfaces.ErrInvalidArgument) {
		t.Fatalf("error = %v, want ErrInvalidArgument", err)
	}
	if r, err := h.PKI.Document(t.Context(), &interfaces.DocumentRequest{Epoch: h.Epoch}); err == nil {
		for _, n := range r.Document.Nodes {
			if bytes.Equal(n.Descriptor.Identity, sd.Descriptor.Identity) {
				t.Fatal("a forged descriptor's identity is in the document")
			}
		}
	}
}

func publishWrongNetwork(t *testing.T, h *Harness) {
	sd := NewDescriptor(t, h.Network+"-other", h.Epoch, "elsewhere", false)
	if _, err := h.PKI.Publish(t.Context(), &interfaces.PublishRequest{Descriptor: sd}); !errors.Is(err, interfaces.ErrInvalidArgument) {
		t.Fatalf("error = %v, want ErrInvalidArgument", err)
	}
}

func publishIdempotent(t *testing.T, h *Harness) {
	var sd *interfaces.SignedDescriptor
	switch {
	case len(h.Known) > 0:
		sd = h.Known[0]
	case h.Accepts:
		sd = NewDescriptor(t, h.Network, h.Epoch, "twice", false)
	default:
		t.Skip("the harness has no descriptor the PKI holds")
	}
	for i := range 2 {
		if _, err := h.PKI.Publish(t.Context(), &interfaces.PublishRequest{Descriptor: sd}); err != nil {
			t.Fatalf("publication %d: %v", i+1, err)
		}
	}
	document(t, h, func(d *interfaces.Document) bool { return holds(d, sd) })
}

func publishAppears(t *testing.T, h *Harness) {
	sd := NewDescriptor(t, h.Network, h.Epoch, "appears", false)
	_, err := h.PKI.Publish(t.Context(), &interfaces.PublishRequest{Descriptor: sd})
	if !h.Accepts {
		if !errors.Is(err, interfaces.ErrInvalidArgument) {
			t.Fatalf("closed design: error = %v, want ErrInvalidArgument", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	document(t, h, func(d *interfaces.Document) bool { return holds(d, sd) })
}

func equivocation(t *testing.T, h *Harness) {
	if !h.Accepts {
		t.Skip("the design takes no publications, so no one can equivocate through it")
	}
	a := NewDescriptor(t, h.Network, h.Epoch, "two-faced", false)
	b := NewDescriptor(t, h.Network, h.Epoch, "two-faced", true)
	if _, err := h.PKI.Publish(t.Context(), &interfaces.PublishRequest{Descriptor: a}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.PKI.Publish(t.Context(), &interfaces.PublishRequest{Descriptor: b}); !errors.Is(err, interfaces.ErrEquivocation) {
		t.Fatalf("second descriptor: error = %v, want ErrEquivocation", err)
	}
	ev, err := h.PKI.Evidence(t.Context(), &interfaces.EvidenceRequest{Epoch: h.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range ev.Equivocations {
		if err := e.Verify(); err != nil {
			t.Fatalf("evidence does not verify: %v", err)
		}
		found = found || bytes.Equal(e.A.Descriptor.Identity, a.Descriptor.Identity)
	}
	if !found {
		t.Fatal("equivocation not reported")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if r, err := h.PKI.Document(ctx, &interfaces.DocumentRequest{Epoch: h.Epoch}); err == nil {
		for _, n := range r.Document.Nodes {
			if bytes.Equal(n.Descriptor.Identity, a.Descriptor.Identity) {
				t.Fatal("the equivocator is still in the document")
			}
		}
	}
}

func noEvidence(t *testing.T, h *Harness) {
	ev, err := h.PKI.Evidence(t.Context(), &interfaces.EvidenceRequest{Epoch: h.Epoch + 500})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Equivocations) != 0 {
		t.Fatalf("%d equivocations reported for an unused epoch", len(ev.Equivocations))
	}
}
