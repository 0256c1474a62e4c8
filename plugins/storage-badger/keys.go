package storagebadger

import (
	"encoding/binary"

	"github.com/sottonet/sotto/interfaces"
)

// Key layout. The first byte names the space, so spaces never overlap:
//
//	'c' | mailbox[32]                      -> last ID assigned (uint64 BE)
//	'f'                                    -> ID floor: the greatest last ID of a reclaimed counter (uint64 BE)
//	'm' | mailbox[32] | id (uint64 BE)     -> payload, Badger TTL = lifetime
//	'r' | epoch (uint64 BE) | tag[32]      -> empty
//	'k' | len(ns) (1 byte) | ns | key      -> value, optional Badger TTL
//
// Fixed-width big-endian integers make Badger's byte order the numeric
// order, so mailbox IDs iterate ascending and an epoch is one prefix that
// DropPrefix removes. The namespace is length-prefixed, so namespace "a"
// with key "bc" and namespace "ab" with key "c" are different keys.
const (
	spaceCounter byte = 'c'
	spaceFloor   byte = 'f'
	spaceMessage byte = 'm'
	spaceReplay  byte = 'r'
	spaceKV      byte = 'k'
)

// maxKeyBytes bounds a KV key (Badger allows 65000 per key; keys live in
// the LSM tree, so the contract keeps them small).
const maxKeyBytes = interfaces.MaxKVKeyBytes

func counterKey(mb interfaces.MailboxID) []byte {
	k := make([]byte, 0, 1+32)
	k = append(k, spaceCounter)
	return append(k, mb[:]...)
}

// floorKey holds the greatest last ID of any reclaimed counter, so that
// a mailbox started again never hands out an ID it handed out before,
// even after the clock went back (see firstID).
var floorKey = []byte{spaceFloor}

// counterMailbox reads the mailbox back from a counter key.
func counterMailbox(key []byte) (mb interfaces.MailboxID, ok bool) {
	if len(key) != 1+32 || key[0] != spaceCounter {
		return mb, false
	}
	copy(mb[:], key[1:])
	return mb, true
}

func mailboxPrefix(mb interfaces.MailboxID) []byte {
	k := make([]byte, 0, 1+32+8)
	k = append(k, spaceMessage)
	return append(k, mb[:]...)
}

func messageKey(mb interfaces.MailboxID, id uint64) []byte {
	return binary.BigEndian.AppendUint64(mailboxPrefix(mb), id)
}

// messageID reads the ID back from a message key; ok is false for a key
// that is not a message key (which would mean a corrupted layout).
func messageID(key []byte) (id uint64, ok bool) {
	if len(key) != 1+32+8 || key[0] != spaceMessage {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[33:]), true
}

func replayPrefix(epoch uint64) []byte {
	k := make([]byte, 0, 1+8+32)
	k = append(k, spaceReplay)
	return binary.BigEndian.AppendUint64(k, epoch)
}

func replayKey(epoch uint64, tag interfaces.ReplayTag) []byte {
	return append(replayPrefix(epoch), tag[:]...)
}

// kvPrefix is the prefix of every key of namespace ns; ns must be valid.
func kvPrefix(ns string, extra int) []byte {
	k := make([]byte, 0, 2+len(ns)+extra)
	k = append(k, spaceKV, byte(len(ns)))
	return append(k, ns...)
}

func kvKey(ns string, key []byte) []byte {
	return append(kvPrefix(ns, len(key)), key...)
}
