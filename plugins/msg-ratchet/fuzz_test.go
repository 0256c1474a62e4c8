package msgratchet

import (
	"context"
	"errors"
	"testing"

	"github.com/sottonet/sotto/interfaces"
	"github.com/sottonet/sotto/interfaces/memkv"
)

// Ciphertexts and contact cards come from the network: any bytes give an
// error or a result, never a panic.
func FuzzParseCard(f *testing.F) {
	f.Add([]byte{cardVersion})
	f.Add(make([]byte, cardFixed))
	f.Add(make([]byte, cardFixed+36))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := parseCard(b)
		if err != nil && !errors.Is(err, interfaces.ErrInvalidArgument) {
			t.Fatalf("parseCard error %v does not wrap ErrInvalidArgument", err)
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	open := func(name string) *Ratchet {
		r, err := Open(context.Background(), memkv.New(), "fuzz")
		if err != nil {
			f.Fatal(err)
		}
		return r
	}
	alice, bob := open("alice"), open("bob")
	ctx := context.Background()
	c, _ := bob.ContactCard(ctx, nil)
	s, err := alice.StartSession(ctx, &interfaces.StartSessionRequest{PeerCard: c.Card})
	if err != nil {
		f.Fatal(err)
	}
	for _, body := range []string{"", "hello", "a longer message body"} {
		ct, err := alice.Encrypt(ctx, &interfaces.EncryptRequest{Session: s.Session, Body: []byte(body)})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ct.Ciphertext)
	}
	f.Fuzz(func(t *testing.T, ct []byte) {
		_, err := bob.Decrypt(ctx, &interfaces.DecryptRequest{Ciphertext: ct})
		if err != nil && !errors.Is(err, interfaces.ErrDecrypt) && !errors.Is(err, interfaces.ErrReplay) {
			t.Fatalf("Decrypt error %v is neither ErrDecrypt nor ErrReplay", err)
		}
	})
}
