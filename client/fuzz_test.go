package client

import (
	"bytes"
	"crypto/hpke"
	crand "crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sottonet/sotto/core/clientproto"
	"github.com/sottonet/sotto/core/cover"
	"github.com/sottonet/sotto/core/sphinx"
)

// fuzzClient is a client that holds a document, an anonymous contact's
// SURB keys, a loop's and a fragment's ACK SURB keys (without running).
// It returns the SURB entries, to restore before each input.
func fuzzClient(t testing.TB) (*Client, map[[sphinx.SURBIDLength]byte]surbEntry) {
	t.Helper()
	net := newSimNet(t, 1, testParams())
	c, p := net.newClient(t, 0, 1, nil)
	p.capture = true
	if _, err := c.fetchDocument(t.Context(), net.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewContact(t.Context(), ContactOptions{Anonymous: true, SURBs: 2}); err != nil {
		t.Fatal(err)
	}
	to, _ := c.NewContact(t.Context(), ContactOptions{})
	if _, err := c.Send(t.Context(), to, []byte("x")); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range []cover.Kind{cover.Loop, cover.Payload} {
		if _, _, err := c.buildSlot(k, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	saved := map[[sphinx.SURBIDLength]byte]surbEntry{}
	for id, e := range c.surbs {
		saved[id] = *e
	}
	return c, saved
}

func (c *Client) restoreSURBs(saved map[[sphinx.SURBIDLength]byte]surbEntry) [][sphinx.SURBIDLength]byte {
	var ids [][sphinx.SURBIDLength]byte
	for id, e := range saved {
		e.keys = slices.Clone(e.keys)
		c.surbs[id] = &e
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b [sphinx.SURBIDLength]byte) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// FuzzConsume feeds mailbox entries to the whole receive path: SURB reply
// decryption, the forward payload split, HPKE, the fragment decoder and
// reassembly.
func FuzzConsume(f *testing.F) {
	c, saved := fuzzClient(f)
	g := c.docs[c.clk0().Now()].geo
	frag := fragmentPlain{kind: kindFragment, id: MessageID{1}, count: 2, data: []byte("half")}
	good, err := sealBody(c.msgPub, &frag, g.UserForwardPayloadLength)
	if err != nil {
		f.Fatal(err)
	}
	loop := fragmentPlain{kind: kindLoop, id: [16]byte{2}, count: 1}
	loopBody, _ := sealBody(c.msgPub, &loop, g.UserForwardPayloadLength)
	f.Add(byte(0), good)
	f.Add(byte(0), loopBody)
	f.Add(byte(0), []byte{})
	reply := make([]byte, g.ForwardPayloadLength+sphinx.PayloadTagLength)
	crand.Read(reply)
	for i := range byte(len(saved)) {
		f.Add(i+1, reply)
	}
	pt, _ := frag.encode(g.UserForwardPayloadLength - hpkeOverhead)
	f.Add(byte(255), pt)
	f.Fuzz(func(t *testing.T, which byte, payload []byte) {
		c.mu.Lock()
		defer c.mu.Unlock()
		ids := c.restoreSURBs(saved)
		m := clientproto.StoredMessage{Payload: payload}
		if which == 255 {
			// payload is a plaintext: encrypt it properly, so that the
			// fragment decoder and reassembly see arbitrary fragments.
			pt := make([]byte, g.UserForwardPayloadLength-hpkeOverhead)
			copy(pt, payload)
			ct, err := hpke.Seal(c.msgPub, hpkeKDF, hpkeAEAD, []byte(hpkeInfo), pt)
			if err != nil {
				t.Fatal(err)
			}
			m.Payload = ct
		} else if which > 0 {
			m.Reply = true
			if i := int(which - 1); i < len(ids) {
				m.SURBID = ids[i]
			} else {
				m.SURBID = [16]byte{which}
			}
		}
		c.consume(m, time.Now())
		for _, u := range c.unread {
			if len(u.Body) > MaxFragments*g.UserForwardPayloadLength {
				t.Fatalf("message of %d bytes", len(u.Body))
			}
		}
		c.unread = nil
	})
}

func FuzzParseFragment(f *testing.F) {
	for _, fr := range []fragmentPlain{
		{kind: kindFragment, id: MessageID{1}, index: 1, count: 3, data: []byte("data")},
		{kind: kindLoop, id: MessageID{2}, count: 1},
	} {
		b, err := fr.encode(64)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := parseFragment(b)
		if err != nil {
			if !errors.Is(err, ErrFragment) {
				t.Fatalf("error %v does not wrap ErrFragment", err)
			}
			return
		}
		out, err := fr.encode(len(b))
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs (%v)", err)
		}
	})
}

// FuzzLoadState: a state file is local, but it is still bytes from outside
// the process; LoadState must refuse garbage without panicking or
// half-merging.
func FuzzLoadState(f *testing.F) {
	c, _ := fuzzClient(f)
	c.mu.Lock()
	c.inbox[MessageID{3}] = &reassembly{count: 2, frags: map[int][]byte{0: []byte("x")}, first: time.Now()}
	c.done[MessageID{4}] = time.Now()
	c.mu.Unlock()
	st, err := c.MarshalState()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(st)
	f.Add([]byte(`{"version":1}`))
	net := newSimNet(f, 1, testParams())
	f.Fuzz(func(t *testing.T, b []byte) {
		fresh, _ := net.newClient(t, 0, 1, nil)
		if err := fresh.LoadState(b); err != nil {
			if !errors.Is(err, ErrState) {
				t.Fatalf("error %v does not wrap ErrState", err)
			}
			return
		}
		if _, err := fresh.MarshalState(); err != nil {
			t.Fatalf("loaded state does not export: %v", err)
		}
	})
}

func TestStateRoundTrip(t *testing.T) {
	c, _ := fuzzClient(t)
	c.mu.Lock()
	c.inbox[MessageID{3}] = &reassembly{count: 2, frags: map[int][]byte{1: []byte("x")}, first: time.Now()}
	c.done[MessageID{4}] = time.Now().Add(time.Hour)
	nSURBs, nBoxes := 0, len(c.surbMailboxes)
	for _, e := range c.surbs {
		if e.kind == surbContact {
			nSURBs++
		}
	}
	c.mu.Unlock()
	st, err := c.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := fuzzClient(t)
	if err := other.LoadState(st); !errors.Is(err, ErrState) {
		t.Fatalf("a state of another identity loaded: %v", err)
	}
	d, err := New(Config{Identity: c.cfg.Identity, Provider: c.cfg.Provider, ProviderID: c.cfg.ProviderID, Logger: c.cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.LoadState(st); err != nil {
		t.Fatal(err)
	}
	if len(d.surbs) != nSURBs || len(d.surbMailboxes) != nBoxes || d.inbox[MessageID{3}] == nil || d.inbox[MessageID{3}].count != 2 {
		t.Fatalf("loaded %d SURBs, %d mailboxes, inbox %v", len(d.surbs), len(d.surbMailboxes), d.inbox)
	}
	if _, ok := d.done[MessageID{4}]; !ok {
		t.Fatal("delivered IDs not restored")
	}
	if clk, ok := d.clock(); !ok || !clk.Genesis().Equal(c.clk0().Genesis()) {
		t.Fatal("the epoch clock was not restored")
	}
	for _, bad := range []string{``, `{}`, `{"version":3}`, `{"version":1,"contact_surbs":[{"id":"AAAA"}]}`, `{"version":2,"identity":"AAAA"}`,
		`{"version":1,"pending":[{"id":"AAAAAAAAAAAAAAAAAAAAAA==","count":1,"fragments":[{"index":0,"data":""}]}]}`} {
		if err := d.LoadState([]byte(bad)); !errors.Is(err, ErrState) {
			t.Errorf("LoadState(%s) = %v, want ErrState", bad, err)
		}
	}
}
