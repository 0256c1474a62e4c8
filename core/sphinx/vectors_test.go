package sphinx

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/sottonet/sotto/internal/vectors"
)

// TestVectors reproduces Katzenpost's Sphinx vectors byte for byte at every
// hop. SOTTO_SPHINX_VECTORS names another file of the same format, which
// must exist.
func TestVectors(t *testing.T) {
	runVectorFile(t, vectors.Named(t, "SOTTO_SPHINX_VECTORS", "katzenpost/sphinx_forward_vectors.json"))
}

func runVectorFile(t *testing.T, name string) {
	t.Helper()
	var entries []vectorEntry
	vectors.Load(t, name, &entries) // fails on an empty list
	for i, e := range entries {
		checkVectorEntry(t, i, e)
	}
}

func checkVectorEntry(t *testing.T, idx int, e vectorEntry) {
	t.Helper()
	n := len(e.Path)
	if n == 0 || len(e.Nodes) != n || len(e.Packets) != n+1 {
		t.Fatalf("entry %d: %d hops, %d nodes, %d packets", idx, n, len(e.Nodes), len(e.Packets))
	}
	payload := unhex(t, e.Payload)
	pkt := unhex(t, e.Packets[0])
	g, err := NewGeometry(len(payload), 5, false)
	if err != nil {
		t.Fatal(err)
	}
	// Unwrapping depends on the hop count only; the packet length is the
	// vector's own (SURB replies are shorter than a withSURB geometry's packet).
	g.PacketLength = len(pkt)
	isSURB := e.Surb != ""
	var res Result
	for i := range n {
		priv, err := NewPrivateKey(unhex(t, e.Nodes[i].PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(priv.PublicKey().Bytes()); got != e.Path[i].PublicKey {
			t.Errorf("entry %d hop %d: public key %s, want %s", idx, i, got, e.Path[i].PublicKey)
		}
		if err := NewUnwrapper(g, priv).Unwrap(pkt, &res); err != nil {
			t.Fatalf("entry %d hop %d: unwrap: %v", idx, i, err)
		}
		cmds := res.Commands.List
		if i < n-1 {
			want := unhex(t, e.Packets[i+1])
			if !bytes.Equal(pkt[:g.HeaderLength], want[:g.HeaderLength]) {
				t.Fatalf("entry %d hop %d: header differs from the vector", idx, i)
			}
			if !bytes.Equal(pkt, want) {
				t.Fatalf("entry %d hop %d: body differs from the vector", idx, i)
			}
			if len(cmds) != len(e.Path[i].Commands)+1 || res.Commands.NextHop == nil || res.Payload != nil {
				t.Fatalf("entry %d hop %d: %d commands, next hop %v, payload %d bytes", idx, i, len(cmds), res.Commands.NextHop != nil, len(res.Payload))
			}
			if got := hex.EncodeToString(cmds[0].AppendTo(nil)); got != e.Path[i].Commands[0] {
				t.Errorf("entry %d hop %d: command %s, want %s", idx, i, got, e.Path[i].Commands[0])
			}
			if got := hex.EncodeToString(res.Commands.NextHop.ID[:]); got != e.Path[i+1].ID {
				t.Errorf("entry %d hop %d: next hop %s, want %s", idx, i, got, e.Path[i+1].ID)
			}
			continue
		}
		if len(cmds) != len(e.Path[i].Commands) || isSURB != (res.Commands.SURBReply != nil) {
			t.Fatalf("entry %d last hop: %d commands, want %d", idx, len(cmds), len(e.Path[i].Commands))
		}
		for j, c := range cmds {
			if got := hex.EncodeToString(c.AppendTo(nil)); got != e.Path[i].Commands[j] {
				t.Errorf("entry %d last hop: command %d is %s, want %s", idx, j, got, e.Path[i].Commands[j])
			}
		}
		got := res.Payload
		if isSURB {
			if got, err = DecryptSURBPayload(res.Payload, unhex(t, e.SurbKeys)); err != nil {
				t.Fatalf("entry %d: DecryptSURBPayload: %v", idx, err)
			}
		}
		if !bytes.Equal(got, payload) {
			t.Errorf("entry %d: payload %x, want %x", idx, got, payload)
		}
	}
}
