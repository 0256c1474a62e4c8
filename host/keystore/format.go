package keystore

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"strconv"
)

// Key file format, version 1. A key file is one PEM block and nothing else:
//
//	-----BEGIN SOTTO SPHINX KEY-----
//	Version: 1
//	Epoch: 1234
//
//	base64(key || checksum)
//	-----END SOTTO SPHINX KEY-----
//
// The block type is "SOTTO IDENTITY KEY" (key = the 32-byte Ed25519 seed,
// no Epoch header) or "SOTTO SPHINX KEY" (key = the 32-byte X25519 private
// key of the epoch in the Epoch header). checksum is
// SHA-256("sotto key file v1\x00" || type || 0x00 || epoch as 8 bytes
// big-endian || key), so a flipped bit, a truncated body, or a key moved to
// another epoch's header is refused. It is an integrity check against
// corruption, not an authenticator: whoever can write the file can write a
// valid one.
const (
	formatVersion   = 1
	typeIdentity    = "SOTTO IDENTITY KEY"
	typeSphinx      = "SOTTO SPHINX KEY"
	keyLen          = 32
	checksumLen     = sha256.Size
	checksumContext = "sotto key file v1\x00"
)

func checksum(typ string, epoch uint64, key []byte) [checksumLen]byte {
	h := sha256.New()
	h.Write([]byte(checksumContext))
	h.Write([]byte(typ))
	h.Write([]byte{0})
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], epoch)
	h.Write(e[:])
	h.Write(key)
	var sum [checksumLen]byte
	h.Sum(sum[:0])
	return sum
}

// encodeKey returns the file contents for a key. The caller zeroes key.
func encodeKey(typ string, epoch uint64, key []byte) []byte {
	sum := checksum(typ, epoch, key)
	body := make([]byte, 0, len(key)+checksumLen)
	body = append(append(body, key...), sum[:]...)
	h := map[string]string{"Version": strconv.Itoa(formatVersion)}
	if typ == typeSphinx {
		h["Epoch"] = strconv.FormatUint(epoch, 10)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: typ, Headers: h, Bytes: body})
	clear(body)
	return out
}

// decodeKey parses a key file of the given type and returns its epoch and
// key bytes (a fresh slice the caller zeroes after use).
func decodeKey(typ string, data []byte) (epoch uint64, key []byte, err error) {
	b, rest := pem.Decode(data)
	if b == nil {
		return 0, nil, fmt.Errorf("%w: not a PEM key file", ErrCorrupt)
	}
	defer clear(b.Bytes)
	if len(bytes.TrimSpace(rest)) != 0 {
		return 0, nil, fmt.Errorf("%w: %d bytes of trailing data after the key", ErrCorrupt, len(rest))
	}
	if b.Type != typ {
		return 0, nil, fmt.Errorf("%w: holds a %q, want a %q", ErrCorrupt, b.Type, typ)
	}
	v, ok := b.Headers["Version"]
	if !ok {
		return 0, nil, fmt.Errorf("%w: no Version header", ErrCorrupt)
	}
	if v != strconv.Itoa(formatVersion) {
		return 0, nil, fmt.Errorf("%w: format version %q, this node reads version %d", ErrCorrupt, v, formatVersion)
	}
	if typ == typeSphinx {
		e, ok := b.Headers["Epoch"]
		if !ok {
			return 0, nil, fmt.Errorf("%w: no Epoch header", ErrCorrupt)
		}
		epoch, err = strconv.ParseUint(e, 10, 64)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: Epoch header %q is not a number", ErrCorrupt, e)
		}
	}
	if len(b.Bytes) != keyLen+checksumLen {
		return 0, nil, fmt.Errorf("%w: body is %d bytes, want %d", ErrCorrupt, len(b.Bytes), keyLen+checksumLen)
	}
	k, sum := b.Bytes[:keyLen], b.Bytes[keyLen:]
	want := checksum(typ, epoch, k)
	if subtle.ConstantTimeCompare(sum, want[:]) != 1 {
		return 0, nil, fmt.Errorf("%w: checksum mismatch (the file was altered or damaged)", ErrCorrupt)
	}
	return epoch, bytes.Clone(k), nil
}
