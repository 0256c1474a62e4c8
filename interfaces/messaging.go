package interfaces

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
)

// SessionID names a messaging session locally (it is never sent).
type SessionID [16]byte

// Messaging is the messaging plugin kind: end-to-end encryption of message
// bodies between two users above the mixnet, for one local user. It fits an
// X3DH-style start from a contact card followed by a Double Ratchet (forward
// secrecy, post-compromise recovery), and other designs with the same shape.
// Fragmentation, retransmission and transport are the host's; the plugin
// sees whole message bodies.
//
// State (identity key, prekeys, every session's ratchet) survives restarts:
// implementations keep it in a Storage KV namespace (in process, the host
// hands its Storage to the constructor; out of process, the plugin's raw
// config names its store), and write it before a call that changed it
// returns, so a restart never reuses a message key or forgets a replay.
// Implementations must be safe for concurrent use.
type Messaging interface {
	// ContactCard returns the local user's current contact card: what a
	// peer needs to start a session while the user is offline (identity
	// key, signed prekey, one-time prekeys, in the design's own encoding,
	// at most MaxContactCardLen bytes). The identity is stable for the life
	// of the state; prekeys may rotate between calls. Read-only apart from
	// rotation.
	ContactCard(ctx context.Context, req *ContactCardRequest) (*ContactCardResponse, error)
	// StartSession starts a session as initiator with the owner of a peer's
	// contact card. A card that does not parse or verify gives
	// ErrInvalidArgument. Idempotent per peer identity: starting again with
	// a card of the same identity returns the existing session (Existing is
	// true) unless Replace is set.
	StartSession(ctx context.Context, req *StartSessionRequest) (*StartSessionResponse, error)
	// Encrypt seals one message body in a session and advances its sending
	// chain. The first messages of an initiator carry what the peer needs
	// to create its side of the session. Not idempotent: every call
	// consumes a message key and gives a different ciphertext. An unknown
	// session gives ErrNotFound; a body over MaxMessageBodyLen gives
	// ErrInvalidArgument.
	Encrypt(ctx context.Context, req *EncryptRequest) (*EncryptResponse, error)
	// Decrypt opens a ciphertext addressed to the local user. A first
	// message from a new peer creates the responder's session (Created is
	// true). Messages may arrive out of order (the mixnet reorders): keys of
	// skipped messages are kept, up to a design-documented bound. A
	// ciphertext already opened gives ErrReplay; a forged, corrupted or
	// undecryptable one gives ErrDecrypt. A failed Decrypt changes no state.
	Decrypt(ctx context.Context, req *DecryptRequest) (*DecryptResponse, error)
	// EndSession deletes a session and its keys. Idempotent.
	EndSession(ctx context.Context, req *EndSessionRequest) (*EndSessionResponse, error)
}

// Limits of the messaging kind.
const (
	MaxContactCardLen = 8 << 10
	MaxMessageBodyLen = 1 << 20
)

// Sentinel errors of the messaging kind; both survive the gRPC boundary.
var (
	// ErrDecrypt: a ciphertext does not authenticate under any key the
	// session holds.
	ErrDecrypt = errors.New("messaging: cannot decrypt")
	// ErrReplay: the ciphertext was already decrypted.
	ErrReplay = errors.New("messaging: replayed message")
)

func init() {
	registerError("decrypt", ErrDecrypt, codes.PermissionDenied)
	registerError("replay", ErrReplay, codes.AlreadyExists)
}

type ContactCardRequest struct{}
type ContactCardResponse struct {
	Card     []byte
	Identity []byte // the card's long-term identity public key
}

type StartSessionRequest struct {
	PeerCard []byte
	Replace  bool
}
type StartSessionResponse struct {
	Session  SessionID
	Existing bool
}

type EncryptRequest struct {
	Session SessionID
	Body    []byte
}
type EncryptResponse struct{ Ciphertext []byte }

type DecryptRequest struct{ Ciphertext []byte }
type DecryptResponse struct {
	Session      SessionID
	PeerIdentity []byte
	Body         []byte
	Created      bool
}

type EndSessionRequest struct{ Session SessionID }
type EndSessionResponse struct{}
