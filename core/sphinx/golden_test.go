package sphinx

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "regenerate testdata/sphinx_golden.json")

const goldenFile = "testdata/sphinx_golden.json"

// makeVectorEntry builds a packet (a SURB reply when final has a SURBReply)
// and records it in Katzenpost's vector format, unwrapping it hop by hop.
func makeVectorEntry(t testing.TB, r io.Reader, hops int, payload []byte, final ...Command) vectorEntry {
	t.Helper()
	g, err := NewGeometry(len(payload), 5, false)
	if err != nil {
		t.Fatal(err)
	}
	nodes := newTestNodes(t, r, hops)
	path := forwardPath(nodes, final...)
	var e vectorEntry
	isSURB := false
	for _, c := range final {
		if _, ok := c.(*SURBReply); ok {
			isSURB = true
		}
	}
	var pkt []byte
	if isSURB {
		surb, keys, err := NewSURB(r, g, path)
		if err != nil {
			t.Fatal(err)
		}
		if pkt, _, err = NewPacketFromSURB(g, surb, payload); err != nil {
			t.Fatal(err)
		}
		e.Surb, e.SurbKeys = hex.EncodeToString(surb), hex.EncodeToString(keys)
	} else if pkt, err = NewPacket(r, g, path, payload); err != nil {
		t.Fatal(err)
	}
	e.Payload = hex.EncodeToString(payload)
	e.Packets = append(e.Packets, hex.EncodeToString(pkt))
	var res Result
	for i, nd := range nodes {
		e.Nodes = append(e.Nodes, struct{ ID, PrivateKey string }{hex.EncodeToString(nd.id[:]), hex.EncodeToString(nd.priv.Bytes())})
		var cmds []string
		for _, c := range path[i].Commands {
			cmds = append(cmds, hex.EncodeToString(c.AppendTo(nil)))
		}
		e.Path = append(e.Path, struct {
			ID        string
			PublicKey string
			Commands  []string
		}{hex.EncodeToString(nd.id[:]), hex.EncodeToString(nd.priv.PublicKey().Bytes()), cmds})
		if err := NewUnwrapper(g, nd.priv).Unwrap(pkt, &res); err != nil {
			t.Fatal(err)
		}
		if i < hops-1 {
			e.Packets = append(e.Packets, hex.EncodeToString(pkt))
		}
	}
	e.Packets = append(e.Packets, "")
	return e
}

func sottoEntries(t testing.TB) []vectorEntry {
	r := testRand(40)
	msg := []byte("Sotto golden vector: mailbox delivery with a storage lifetime.")
	mb := &MailboxDelivery{Mailbox: [16]byte{0x5a, 1, 2, 3}, Lifetime: 7 * 24 * 3600}
	return []vectorEntry{
		makeVectorEntry(t, r, 1, msg, &Recipient{ID: [32]byte{1}}),
		makeVectorEntry(t, r, 3, msg, &Recipient{ID: [32]byte{2}}, mb),
		makeVectorEntry(t, r, 5, msg, mb),
		makeVectorEntry(t, r, 2, msg, &SURBReply{ID: [16]byte{3}}, mb),
		makeVectorEntry(t, r, 5, msg, &Recipient{ID: [32]byte{4}}, &SURBReply{ID: [16]byte{5}}),
	}
}

// TestGolden pins Sotto's own packets (with MailboxDelivery, forward and
// SURB) made from fixed randomness; regenerate with -run Golden -update.
func TestGolden(t *testing.T) {
	got, err := json.MarshalIndent(sottoEntries(t), "", " ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(goldenFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("packets differ from %s", goldenFile)
	}
	runVectorFile(t, goldenFile)
}

// TestVectorsSURBEntries runs the vector test through SOTTO_SPHINX_VECTORS
// on a file of SURB-reply entries in Katzenpost's format, as Katzenpost's
// own SURB vector files are.
func TestVectorsSURBEntries(t *testing.T) {
	r := testRand(41)
	payload := []byte("It is the stillest words that bring on the storm.")
	var entries []vectorEntry
	for hops := 1; hops <= 5; hops++ {
		entries = append(entries, makeVectorEntry(t, r, hops, payload, &Recipient{ID: [32]byte{byte(hops)}}, &SURBReply{ID: [16]byte{byte(hops)}}))
	}
	b, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "surb_vectors.json")
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOTTO_SPHINX_VECTORS", name)
	TestVectors(t)
}
