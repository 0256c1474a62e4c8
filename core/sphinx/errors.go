package sphinx

import "errors"

// Sentinel errors; wrapped with context, test them with errors.Is.
var (
	// ErrInvalidPacket: the packet is malformed (wrong size, bad command block).
	ErrInvalidPacket = errors.New("sphinx: invalid packet")
	// ErrInvalidVersion: the header's version bytes are not 00 00.
	ErrInvalidVersion = errors.New("sphinx: invalid packet version")
	// ErrInvalidMAC: the header MAC does not verify (tampered, or not for this key).
	ErrInvalidMAC = errors.New("sphinx: invalid header MAC")
	// ErrInvalidPayload: the final hop's payload tag is not zero (the body was
	// tampered with somewhere on the path), or a SURB reply does not decrypt.
	ErrInvalidPayload = errors.New("sphinx: invalid payload")
	// ErrInvalidGroupElement: a group element is low-order (the X25519 shared
	// secret is all zero).
	ErrInvalidGroupElement = errors.New("sphinx: invalid group element")
	// ErrInvalidKey: a key has the wrong size.
	ErrInvalidKey = errors.New("sphinx: invalid key")
	// ErrInvalidCommand: a routing command is malformed or unknown.
	ErrInvalidCommand = errors.New("sphinx: invalid routing command")
	// ErrInvalidPath: the path or its commands do not fit the geometry.
	ErrInvalidPath = errors.New("sphinx: invalid path")
	// ErrInvalidGeometry: geometry parameters out of range.
	ErrInvalidGeometry = errors.New("sphinx: invalid geometry")
)
