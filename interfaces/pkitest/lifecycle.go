package pkitest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sottonet/sotto/interfaces"
)

// The suite's cases of cancellation, concurrency and restart.

// cancelled: a call whose context is already cancelled fails with the
// context's error (or completes, for a PKI that finished first), and the
// PKI is unharmed.
func cancelled(t *testing.T, h *Harness) {
	c, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, interfaces.ErrNotFound) {
			t.Errorf("%s with a cancelled context: err = %v, want nil, context.Canceled or (no document yet) ErrNotFound", op, err)
		}
	}
	_, err := h.PKI.Document(c, &interfaces.DocumentRequest{Epoch: h.Epoch})
	check("Document", err)
	_, err = h.PKI.Evidence(c, &interfaces.EvidenceRequest{Epoch: h.Epoch})
	check("Evidence", err)
	if h.Accepts {
		_, err = h.PKI.Publish(c, &interfaces.PublishRequest{Descriptor: NewDescriptor(t, h.Network, h.Epoch, "cancelled", false)})
		check("Publish", err)
	}
	documentVerifies(t, h)
}

// concurrentReaders: many Document calls at once agree on one document
// (nothing is published meanwhile).
func concurrentReaders(t *testing.T, h *Harness) {
	first := someDocument(t, h, "readers")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			r, err := h.PKI.Document(t.Context(), &interfaces.DocumentRequest{Epoch: h.Epoch})
			if err != nil {
				t.Errorf("Document: %v", err)
				return
			}
			if r.Hash != first.Hash {
				t.Errorf("concurrent Document calls disagree: hash %x, then %x", first.Hash, r.Hash)
			}
		})
	}
	wg.Wait()
}

// concurrentPublications: descriptors published at once all appear
// (designs that learn through Publish only).
func concurrentPublications(t *testing.T, h *Harness) {
	if !h.Accepts {
		t.Skip("this design learns no descriptors through Publish")
	}
	sds := make([]*interfaces.SignedDescriptor, 6)
	for i := range sds {
		sds[i] = NewDescriptor(t, h.Network, h.Epoch, fmt.Sprint("concurrent ", i), false)
	}
	var wg sync.WaitGroup
	for _, sd := range sds {
		wg.Go(func() {
			if _, err := h.PKI.Publish(t.Context(), &interfaces.PublishRequest{Descriptor: sd}); err != nil {
				t.Errorf("Publish: %v", err)
			}
		})
	}
	wg.Wait()
	document(t, h, func(d *interfaces.Document) bool {
		for _, sd := range sds {
			if !holds(d, sd) {
				return false
			}
		}
		return true
	})
}

// reopened: a PKI closed and opened again on its state serves the same
// document for the epoch.
func reopened(t *testing.T, h *Harness) {
	if h.Reopen == nil {
		t.Skip("no Harness.Reopen")
	}
	before := someDocument(t, h, "reopened")
	h.PKI = h.Reopen(t)
	after := document(t, h, func(d *interfaces.Document) bool {
		got, err := d.Hash()
		return err == nil && got == before.Hash
	})
	if after.Hash != before.Hash {
		t.Errorf("after a restart the document hashes to %x, before it %x", after.Hash, before.Hash)
	}
}

// someDocument returns the harness's document for its epoch, publishing a
// descriptor first if the design starts with none.
func someDocument(t *testing.T, h *Harness, seed string) *interfaces.DocumentResponse {
	t.Helper()
	if !h.Accepts || len(h.Known) > 0 {
		return document(t, h, nil)
	}
	sd := NewDescriptor(t, h.Network, h.Epoch, seed, false)
	if _, err := h.PKI.Publish(t.Context(), &interfaces.PublishRequest{Descriptor: sd}); err != nil {
		t.Fatal(err)
	}
	return document(t, h, func(d *interfaces.Document) bool { return holds(d, sd) })
}
