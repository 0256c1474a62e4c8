package client

import (
	"testing"
	"time"
)

// When every mix of a layer is a suspect, paths prefer the mixes whose
// losses a success has since interrupted: a dead mix's run of losses only
// grows, so it is the one left out.
func TestAllSuspectLayerPrefersTheShortestLossStreak(t *testing.T) {
	c := &Client{health: map[[32]byte]*mixHealth{}}
	dead, honest := node{id: [32]byte{1}}, node{id: [32]byte{2}}
	now := time.Unix(1000, 0)
	for i := range 5 {
		at := now.Add(time.Duration(i) * time.Second)
		c.markLost([][32]byte{dead.id, honest.id}, at, true) // loops through both are lost
		c.markOK([][32]byte{honest.id}, at.Add(-time.Millisecond))
	}
	c.markLost([][32]byte{honest.id}, now.Add(10*time.Second), true)
	got := c.leastLost([]node{dead, honest})
	if len(got) != 1 || got[0].id != honest.id {
		t.Fatalf("leastLost = %v, want only the mix whose losses successes interrupted", got)
	}
	if all := c.leastLost([]node{{id: [32]byte{7}}, {id: [32]byte{8}}}); len(all) != 2 {
		t.Fatalf("mixes never seen: leastLost = %d of 2", len(all))
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
