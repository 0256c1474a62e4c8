package client

import (
	"errors"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/epoch"
)

// What loops and ACKs report becomes the health path choice reads
// (topology.Mixes): when loops through two mixes are lost together but
// successes keep interrupting one mix's run of losses, the other (a dead
// mix's run only grows) has the longer streak, and both are suspects.
func TestHealthReportsSuspectsAndLossStreaks(t *testing.T) {
	c := &Client{health: map[[32]byte]*mixHealth{}, cfg: Config{SuspectFor: time.Minute}}
	dead, honest := [32]byte{1}, [32]byte{2}
	now := time.Unix(1000, 0)
	for i := range 5 {
		at := now.Add(time.Duration(i) * time.Second)
		c.markLost([][32]byte{dead, honest}, at, true) // loops through both are lost
		c.markOK([][32]byte{honest}, at.Add(-time.Millisecond))
	}
	c.markLost([][32]byte{honest}, now.Add(10*time.Second), true)
	h := clientHealth{c, now.Add(11 * time.Second)}
	if !h.Suspect(dead) || !h.Suspect(honest) {
		t.Fatal("mixes on lost loops are not suspects")
	}
	if d, o := h.LostStreak(dead), h.LostStreak(honest); d <= o {
		t.Fatalf("streaks: dead %d, honest %d; want the dead mix's longer", d, o)
	}
	if h.LostStreak([32]byte{7}) != 0 || h.Suspect([32]byte{7}) {
		t.Fatal("a mix never seen has a record")
	}
	if later := (clientHealth{c, now.Add(11*time.Second + time.Minute)}); later.Suspect(dead) {
		t.Fatal("a suspect stays one past SuspectFor")
	}
}

// Reassembly stays within its byte bound however the fragments arrive:
// fragments added to messages already started count too.
func TestReassemblyBytesAreBounded(t *testing.T) {
	c := &Client{inbox: map[MessageID]*reassembly{}, done: map[MessageID]time.Time{}}
	frag := make([]byte, 1<<16)
	for m := range 4 {
		id := MessageID{byte(m + 1)}
		c.inbox[id] = &reassembly{count: MaxFragments, frags: map[int][]byte{}, first: time.Unix(int64(m), 0)}
		for i := range maxPendingBytes / len(frag) / 2 {
			if !c.makeRoom(id, false, len(frag)) {
				t.Fatal("no room made for a fragment of a started message")
			}
			c.inbox[id].frags[i] = frag
			c.inboxBytes += len(frag)
			if c.inboxBytes > maxPendingBytes {
				t.Fatalf("reassembly holds %d bytes, bound %d", c.inboxBytes, maxPendingBytes)
			}
		}
	}
	if c.stats.ReassemblyEvicted == 0 {
		t.Fatal("nothing evicted although four half-bound messages were fed")
	}
}

// A client configured with another epoch clock than the network states is
// told so when it fetches a document, instead of waiting forever for an
// epoch that never comes.
func TestAWrongClockIsAnError(t *testing.T) {
	net := newSimNet(t, 1, testParams())
	c, _ := net.newClient(t, 0, 1, func(cfg *Config) {
		clk, err := epoch.New(net.clock.Genesis().Add(time.Second), net.clock.Period(), net.clock.Grace())
		if err != nil {
			t.Fatal(err)
		}
		cfg.Clock = clk
	})
	_, err := c.fetchDocument(t.Context(), net.clock.Now())
	if !errors.Is(err, ErrWrongClock) {
		t.Fatalf("err = %v, want ErrWrongClock", err)
	}
	good, _ := net.newClient(t, 0, 2, nil)
	if _, err := good.fetchDocument(t.Context(), net.clock.Now()); err != nil {
		t.Fatalf("a client on the network's clock: %v", err)
	}
}
