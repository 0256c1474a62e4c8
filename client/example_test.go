package client_test

import (
	"bytes"
	"fmt"

	"github.com/sottonet/sotto/client"
)

// A contact travels as a string; ParseContact checks its checksum, so a
// mistyped contact is refused rather than sending to a wrong mailbox.
func ExampleParseContact() {
	c := &client.Contact{
		Network:  "example",
		Key:      bytes.Repeat([]byte{1}, 32), // the recipient's HPKE key (Client.MessageKey)
		Provider: [32]byte{2},                 // its provider's identity
		Mailbox:  [32]byte{3},                 // clientproto.OwnMailbox of the recipient
	}
	s := c.String()
	got, err := client.ParseContact(s)
	fmt.Println(s[:12]+"...", err, got.Network, got.Anonymous())

	typo := []byte(s)
	typo[20] ^= 1
	_, err = client.ParseContact(string(typo))
	fmt.Println(err != nil)
	// Output:
	// sotto1AQEHZX... <nil> example false
	// true
}
