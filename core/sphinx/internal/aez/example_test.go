package aez_test

import (
	"bytes"
	"fmt"

	"github.com/sottonet/sotto/core/sphinx/internal/aez"
)

// A Sphinx hop deciphers the payload in place with its SPRP key and header IV; the
// sender enciphers with the same pair.
func ExampleCipher() {
	var key [aez.KeySize]byte  // from the hop's KDF output (bytes 80..128)
	var iv [aez.NonceSize]byte // the hop's header IV (bytes 64..80)
	payload := append(make([]byte, 32), "hello, mix network"...)

	var c aez.Cipher
	c.SetKey(&key)
	defer c.Reset()
	body := bytes.Clone(payload)
	c.Encipher(body, body, &iv) // sender
	c.Decipher(body, body, &iv) // hop
	fmt.Println(bytes.Equal(body, payload), string(body[32:]))
	// Output: true hello, mix network
}
