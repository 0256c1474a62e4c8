package client

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func testContacts(t testing.TB) map[string]*Contact {
	t.Helper()
	key := bytes.Repeat([]byte{0x42}, 32)
	surbs := []ContactSURB{{123456, bytes.Repeat([]byte{1}, 572)}, {123456, bytes.Repeat([]byte{2}, 572)},
		{123457, bytes.Repeat([]byte{3}, 572)}}
	return map[string]*Contact{
		"forward":               {Network: "sotto-test", Key: key, Provider: [32]byte{7, 7}, Mailbox: [32]byte{9}},
		"forward for someone":   {Network: "sotto-test", Key: key, For: "bob", Provider: [32]byte{7, 7}, Mailbox: [32]byte{9}},
		"anonymous":             {Network: "n", Key: key, For: "carol", SURBs: surbs},
		"forward with a card":   {Network: "sotto-test", Key: key, Card: bytes.Repeat([]byte{5}, 310), Provider: [32]byte{7, 7}, Mailbox: [32]byte{9}},
		"anonymous with a card": {Network: "n", Key: key, For: "carol", Card: bytes.Repeat([]byte{6}, MaxCardLen), SURBs: surbs},
	}
}

func TestContactRoundTrip(t *testing.T) {
	for name, c := range testContacts(t) {
		t.Run(name+" contacts survive encoding", func(t *testing.T) {
			s := c.String()
			if !strings.HasPrefix(s, ContactPrefix) {
				t.Fatalf("%q lacks the prefix", s[:10])
			}
			got, err := ParseContact(" " + s + "\n")
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != s || got.Network != c.Network || !bytes.Equal(got.Key, c.Key) ||
				got.Provider != c.Provider || got.Mailbox != c.Mailbox || got.For != c.For || len(got.SURBs) != len(c.SURBs) || !bytes.Equal(got.Card, c.Card) {
				t.Fatalf("round trip changed the contact: %+v", got)
			}
			for i := range c.SURBs {
				if !bytes.Equal(got.SURBs[i].SURB, c.SURBs[i].SURB) || got.SURBs[i].Epoch != c.SURBs[i].Epoch {
					t.Fatalf("SURB %d differs", i)
				}
			}
			var u Contact
			if err := u.UnmarshalText([]byte(s)); err != nil || u.String() != s {
				t.Fatalf("UnmarshalText: %v", err)
			}
		})
	}
}

func TestParseContactRejectsCorruption(t *testing.T) {
	good := testContacts(t)["forward"].String()
	anon := testContacts(t)["anonymous"].String()
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name string
		s    string
	}{
		{"an empty string", ""},
		{"a missing prefix", strings.TrimPrefix(good, ContactPrefix)},
		{"another prefix", "sotto2" + strings.TrimPrefix(good, ContactPrefix)},
		{"a character changed in the middle", flip(good, len(good)/2)},
		{"a character changed at the end", flip(good, len(good)-1)},
		{"a character changed in a SURB", flip(anon, len(anon)/2)},
		{"a truncated string", good[:len(good)-4]},
		{"one character removed", good[:len(good)-1]},
		{"an appended character", good + "A"},
		{"padding", good + "=="},
		{"a newline inside", good[:20] + "\n" + good[20:]},
		{"standard base64 characters", strings.ReplaceAll(strings.ReplaceAll(good, "-", "+"), "_", "/") + "+/"},
		{"a huge string", ContactPrefix + strings.Repeat("A", maxContactLength)},
	}
	for _, tt := range tests {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			if tt.s == good {
				t.Skip("corruption did not change the string")
			}
			if _, err := ParseContact(tt.s); !errors.Is(err, ErrContact) {
				t.Fatalf("err = %v, want ErrContact", err)
			}
		})
	}
}

func TestContactValidate(t *testing.T) {
	base := testContacts(t)
	tests := []struct {
		name string
		mod  func(*Contact)
	}{
		{"no network", func(c *Contact) { c.Network = "" }},
		{"a long network", func(c *Contact) { c.Network = strings.Repeat("n", 65) }},
		{"a short key", func(c *Contact) { c.Key = c.Key[:31] }},
		{"no provider", func(c *Contact) { c.Provider = [32]byte{} }},
		{"a long for-name", func(c *Contact) { c.For = strings.Repeat("f", 65) }},
		{"SURBs and a mailbox", func(c *Contact) { c.SURBs = []ContactSURB{{1, []byte{1}}} }},
	}
	for _, tt := range tests {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			c := base["forward"].clone()
			tt.mod(c)
			if _, err := c.MarshalText(); !errors.Is(err, ErrContact) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	c := base["anonymous"].clone()
	c.SURBs[1].SURB = c.SURBs[1].SURB[:10]
	if _, err := c.MarshalText(); !errors.Is(err, ErrContact) {
		t.Fatalf("SURBs of different lengths: err = %v", err)
	}
	c = base["anonymous"].clone()
	c.SURBs[0].Epoch = 999999
	if _, err := c.MarshalText(); !errors.Is(err, ErrContact) {
		t.Fatalf("SURBs out of epoch order: err = %v", err)
	}
}

// Contacts of version 1 (one epoch of SURBs, no for-name), as clients
// before version 2 wrote them, still parse.
func TestVersion1AnonymousContactsStillParse(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, 32)
	b := []byte{contactV1, modeAnonymous, 1, 'n'}
	b = append(b, key...)
	b = binary.BigEndian.AppendUint64(b, 77)
	b = binary.BigEndian.AppendUint16(b, 3)
	b = append(b, 2, 1, 1, 1, 2, 2, 2)
	sum := contactSum(b)
	s := ContactPrefix + base64.RawURLEncoding.EncodeToString(append(b, sum[:contactChecksum]...))
	c, err := ParseContact(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.SURBs) != 2 || c.SURBs[1].Epoch != 77 || !bytes.Equal(c.SURBs[1].SURB, []byte{2, 2, 2}) {
		t.Fatalf("parsed %+v", c)
	}
}

func FuzzParseContact(f *testing.F) {
	for _, c := range testContacts(f) {
		f.Add(c.String())
	}
	f.Add(ContactPrefix)
	f.Add(ContactPrefix + "AQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseContact(s)
		if err != nil {
			if !errors.Is(err, ErrContact) {
				t.Fatalf("error %v does not wrap ErrContact", err)
			}
			return
		}
		// What parses re-encodes to the same string (version 1
		// anonymous contacts are re-encoded as version 2).
		if out := c.String(); out != strings.TrimSpace(s) && !(c.Anonymous() && c.For == "") {
			t.Fatalf("re-encoding differs:\n%q\n%q", out, s)
		}
	})
}

// A contact with a messaging card is version 3; one without stays what
// older clients read; a card over MaxCardLen is refused both ways.
func TestContactCards(t *testing.T) {
	cs := testContacts(t)
	version := func(c *Contact) byte {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(c.String(), ContactPrefix))
		if err != nil {
			t.Fatal(err)
		}
		return raw[0]
	}
	for name, want := range map[string]byte{"forward": contactV1, "anonymous": contactV2, "forward with a card": contactV3, "anonymous with a card": contactV3} {
		if got := version(cs[name]); got != want {
			t.Errorf("%s: version %d, want %d", name, got, want)
		}
	}
	big := cs["forward with a card"].clone()
	big.Card = make([]byte, MaxCardLen+1)
	if _, err := big.MarshalText(); !errors.Is(err, ErrContact) {
		t.Fatalf("a card of %d bytes: err = %v, want ErrContact", len(big.Card), err)
	}
	// Hand-made: a version 3 string whose card length says more than is there.
	b := []byte{contactV3, modeForward, 1, 'n'}
	b = append(b, make([]byte, 32)...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, 2000)
	b = append(b, make([]byte, 64)...)
	sum := contactSum(b)
	s := ContactPrefix + base64.RawURLEncoding.EncodeToString(append(b, sum[:contactChecksum]...))
	if _, err := ParseContact(s); !errors.Is(err, ErrContact) {
		t.Fatalf("a card length over the bound: err = %v, want ErrContact", err)
	}
}
