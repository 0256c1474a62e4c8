package clientproto

import (
	"errors"
	"fmt"
)

// Sentinel errors of the client protocol. A provider's error reply carries
// a Code; on the client it becomes an *Error that unwraps to the sentinel
// of its code, so callers branch with errors.Is. ErrNoDocument (code
// NotFound) is declared with the package.
var (
	// ErrBadRequest: the provider refused a well-framed request it cannot
	// serve as asked (a field out of the protocol's range, wrong packet
	// size, unknown first hop, epoch out of the window). Retrying the same
	// request cannot help.
	ErrBadRequest = errors.New("clientproto: bad request")
	// ErrForbidden: the client may not do this (its libp2p identity is not
	// an Ed25519 key, so it has no own mailbox).
	ErrForbidden = errors.New("clientproto: forbidden")
	// ErrPaymentRequired: the provider charges for sending and the client
	// has no packets left; Redeem a credential, then retry. A Redeem whose
	// credential does not verify, or was spent before, gets it too.
	ErrPaymentRequired = errors.New("clientproto: payment required")
	// ErrBusy: the provider is overloaded (its pipeline or a link's queue
	// is full, or a storage call timed out). The same request may succeed
	// later; back off.
	ErrBusy = errors.New("clientproto: provider busy")
	// ErrInternal: the provider failed for a reason of its own.
	ErrInternal = errors.New("clientproto: provider internal error")
	// ErrUnsupported: the provider does not know the operation (a newer
	// client speaking to an older provider).
	ErrUnsupported = errors.New("clientproto: unsupported operation")
	// ErrMalformed: bytes that are not a valid frame or message: a frame
	// over the limit, or a body whose length its fields do not give.
	// Locally produced by decoders; a provider resets a stream that sends
	// one (Request.Decode returns an *Error instead for what it answers).
	ErrMalformed = errors.New("clientproto: malformed message")
)

// Code is the status of a response: OK or why a request failed.
type Code uint8

// Response codes. Values are part of the wire format; never renumber.
const (
	CodeOK              Code = 0
	CodeBadRequest      Code = 1
	CodeForbidden       Code = 2
	CodeNotFound        Code = 3 // today only a missing PKI document
	CodePaymentRequired Code = 4
	CodeBusy            Code = 5
	CodeInternal        Code = 6
	CodeUnsupported     Code = 7
)

var codeSentinels = [...]error{
	CodeBadRequest:      ErrBadRequest,
	CodeForbidden:       ErrForbidden,
	CodeNotFound:        ErrNoDocument,
	CodePaymentRequired: ErrPaymentRequired,
	CodeBusy:            ErrBusy,
	CodeInternal:        ErrInternal,
	CodeUnsupported:     ErrUnsupported,
}

var codeNames = [...]string{
	CodeOK:              "ok",
	CodeBadRequest:      "bad_request",
	CodeForbidden:       "forbidden",
	CodeNotFound:        "not_found",
	CodePaymentRequired: "payment_required",
	CodeBusy:            "busy",
	CodeInternal:        "internal",
	CodeUnsupported:     "unsupported",
}

// String is the code's stable name (used as a metric label).
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code_%d", uint8(c))
}

// CodeOf is the code a provider replies with for err: that of the first
// sentinel err wraps, CodeInternal for any other error, CodeOK for nil.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	for c, s := range codeSentinels {
		if s != nil && errors.Is(err, s) {
			return Code(c)
		}
	}
	return CodeInternal
}

// MaxErrorMessageLength bounds the text of an error reply.
const MaxErrorMessageLength = 256

// Error is a provider's error reply as the client sees it, and what
// Request.Decode returns for a request a provider must answer with an
// error rather than reset. It unwraps to the sentinel of its Code (none
// for a code this version does not know).
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("clientproto: provider replied %s", e.Code)
	}
	return fmt.Sprintf("clientproto: provider replied %s: %s", e.Code, e.Message)
}

// Unwrap returns the sentinel of e.Code.
func (e *Error) Unwrap() error {
	if int(e.Code) < len(codeSentinels) {
		return codeSentinels[e.Code]
	}
	return nil
}
