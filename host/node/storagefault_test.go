package node

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
)

// A failed storage write makes the node refuse clients' packets as busy,
// with a reason, for storageFaultHold; a write that succeeds ends it at once.
func TestStorageFaultRefusesClientPacketsUntilAWriteSucceeds(t *testing.T) {
	n := &Node{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	now := time.Now()
	if n.storageRefuses(now) {
		t.Fatal("refusing before any failure")
	}
	// Times relative to just before the failure, which the node stamps
	// at or after t0: a stall of the test between the calls must not
	// move them.
	t0 := time.Now()
	n.storageWrote(errors.New("disk nearly full"))
	if !n.storageRefuses(t0) {
		t.Fatal("not refusing right after a failed write")
	}
	if !n.storageRefuses(t0.Add(storageFaultHold / 2)) {
		t.Fatal("not refusing within the hold")
	}
	if n.storageRefuses(time.Now().Add(storageFaultHold + time.Second)) {
		t.Fatal("still refusing after the hold with no new failure")
	}
	n.storageWrote(nil)
	if n.storageRefuses(time.Now()) {
		t.Fatal("still refusing after a write succeeded")
	}
	if clientproto.CodeOf(errStorageRefused) != clientproto.CodeBusy || !errors.Is(errStorageRefused, clientproto.ErrBusy) {
		t.Fatalf("refusal %v is not busy", errStorageRefused)
	}
}
