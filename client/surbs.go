// The SURBs this client made and awaits a reply through (Client.surbs):
// fragment ACKs, loop ACKs, and those handed out in contacts.

package client

import (
	"crypto/hpke"
	"time"
)

type surbKind uint8

const (
	surbACK     surbKind = 1 // ACK of a message fragment
	surbLoopACK surbKind = 2 // ACK of a loop
	surbContact surbKind = 3 // handed out in a receiver-anonymous contact
	surbE2E     surbKind = 4 // end-to-end ACK of a fragment sent through a contact's SURB
)

type surbEntry struct {
	kind    surbKind
	keys    []byte
	expires time.Time
	frag    *outFragment // surbACK, surbE2E
	mixes   [][32]byte   // surbACK: the attempt's mixes
	loop    [16]byte     // surbLoopACK
	// surbContact: the geometry the reply's payload has, and the contact's
	// own HPKE key.
	payloadLen, hops int
	msgKey           hpke.PrivateKey
	label            string // the contact's For
}

// surbMailbox is a SURB mailbox of this client's anonymous contacts.
type surbMailbox struct {
	expires time.Time // when its last message expires
	label   string    // the contact's For
}

func surbFingerprint(s []byte) [32]byte {
	return sha256Sum(s)
}
