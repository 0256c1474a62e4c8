package client

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func testContacts(t testing.TB) map[string]*Contact {
	t.Helper()
	key := bytes.Repeat([]byte{0x42}, 32)
	surbs := [][]byte{bytes.Repeat([]byte{1}, 572), bytes.Repeat([]byte{2}, 572), bytes.Repeat([]byte{3}, 572)}
	return map[string]*Contact{
		"forward":   {Network: "sotto-test", Key: key, Provider: [32]byte{7, 7}, Mailbox: [32]byte{9}},
		"anonymous": {Network: "n", Key: key, Epoch: 123456, SURBs: surbs},
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
				got.Provider != c.Provider || got.Mailbox != c.Mailbox || got.Epoch != c.Epoch || len(got.SURBs) != len(c.SURBs) {
				t.Fatalf("round trip changed the contact: %+v", got)
			}
			for i := range c.SURBs {
				if !bytes.Equal(got.SURBs[i], c.SURBs[i]) {
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
		{"an epoch without SURBs", func(c *Contact) { c.Epoch = 3 }},
		{"SURBs and a mailbox", func(c *Contact) { c.SURBs = [][]byte{{1}} }},
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
	c.SURBs[1] = c.SURBs[1][:10]
	if _, err := c.MarshalText(); !errors.Is(err, ErrContact) {
		t.Fatalf("SURBs of different lengths: err = %v", err)
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
		// What parses re-encodes to the same string.
		if out := c.String(); out != strings.TrimSpace(s) {
			t.Fatalf("re-encoding differs:\n%q\n%q", out, s)
		}
	})
}
