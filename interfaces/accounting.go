package interfaces

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
)

// NodeID names a node by its Ed25519 identity key (see Descriptor.Identity).
type NodeID [32]byte

// Accounting is the accounting (payment) plugin kind. One contract serves
// designs that differ in everything but their shape:
//
//   - blind signatures (RFC 9474): Issue blind-signs a client's blinded
//     token; Redeem verifies an unblinded token at the gateway and spends it
//     (a spent token is remembered, e.g. in Storage KV with IfAbsent);
//   - payment channels: Issue opens or tops up a channel; Redeem accepts a
//     signed balance update greater than the last one seen;
//   - secret shopper: an auditor sends probe packets through chosen nodes
//     and reports what came back with RecordWork; Redeem may accept all.
//
// Credentials and issuance messages are opaque bytes whose format belongs
// to the design (named by Scheme); the host only carries them. Every
// design reports, per epoch, what each node earned (Earnings), so designs
// can be compared on one network. Payment is checked per credential at the
// gateway, never per packet at a mix. Implementations must be safe for
// concurrent use, and keep what they must not forget (spent tokens,
// channel balances, earnings) durable, e.g. through Storage.
type Accounting interface {
	// Info returns the design's public parameters (a blind-RSA public key,
	// channel terms...) as published in this node's descriptor
	// (Descriptor.Accounting, at most MaxAccountingLen bytes) and the
	// scheme name. Read-only.
	Info(ctx context.Context, req *AccountingInfoRequest) (*AccountingInfoResponse, error)
	// Issue runs one issuance step for a client: blind-sign a blinded
	// token, open a channel... A malformed request gives ErrInvalidArgument;
	// one the design refuses (unpaid, over quota) gives ErrPaymentRequired.
	// Idempotency is the design's: blind signing is deterministic per
	// input; opening the same channel twice must not open two.
	Issue(ctx context.Context, req *IssueRequest) (*IssueResponse, error)
	// Redeem checks a credential a client presents at its gateway and, if
	// it is good, grants the client up to Packets packets of service (the
	// grant may be smaller). How much one credential is worth is the
	// design's: a single-use token is spent once; a reusable-but-capped
	// credential (a quota per client and epoch, a channel's deposit) grants
	// until its cap is reached; a free design grants without limit. Every
	// design counts exactly: concurrent Redeems of one credential never
	// grant together more than it is worth (for a single-use token, at
	// most one succeeds), also across restarts. A credential with nothing
	// left (spent, over its cap, a channel update not newer than the last)
	// gives ErrDoubleSpend; one that does not verify gives
	// ErrPaymentRequired; malformed bytes give ErrInvalidArgument. A
	// Redeem that fails grants nothing and spends nothing.
	Redeem(ctx context.Context, req *RedeemRequest) (*RedeemResponse, error)
	// RecordWork reports work done in an epoch, aggregated (never one call
	// per packet): packets a node forwarded or delivered, or probes an
	// auditor saw come back through a node. Counts add up; reporting the
	// same batch twice counts it twice unless it carries the same BatchID,
	// which makes the call idempotent.
	RecordWork(ctx context.Context, req *RecordWorkRequest) (*RecordWorkResponse, error)
	// Earnings returns what each node earned in one epoch, in ascending
	// NodeID order. An epoch with no work gives an empty list. Read-only;
	// once an epoch is over, repeated calls give the same answer.
	Earnings(ctx context.Context, req *EarningsRequest) (*EarningsResponse, error)
}

// Sentinel errors of the accounting kind. Both survive the gRPC boundary.
var (
	// ErrPaymentRequired: the credential does not verify or does not pay
	// for what was asked.
	ErrPaymentRequired = errors.New("accounting: payment required")
	// ErrDoubleSpend: the credential was already spent (or a channel update
	// is not newer than the last).
	ErrDoubleSpend = fmt.Errorf("accounting: double spend: %w", ErrPaymentRequired)
)

func init() {
	registerError("payment_required", ErrPaymentRequired, codes.PermissionDenied)
	registerError("double_spend", ErrDoubleSpend, codes.AlreadyExists)
}

// MaxCredentialLen bounds a credential or issuance message.
const MaxCredentialLen = 16 << 10

type AccountingInfoRequest struct{ Epoch uint64 }
type AccountingInfoResponse struct {
	Scheme string // e.g. "free", "blindrsa-rfc9474", "channels", "shopper"
	Params []byte // what the node's descriptor publishes
}

// ClientKey names a client by its Ed25519 public key, the key its
// provider authenticated in the client protocol's Noise handshake. The
// zero key means the host knows no client for the call.
type ClientKey [32]byte

type IssueRequest struct {
	Epoch   uint64
	Request []byte // design-specific, at most MaxCredentialLen
	// Client is the authenticated client the issuance is for.
	Client ClientKey
}
type IssueResponse struct{ Response []byte }

type RedeemRequest struct {
	// Epoch is the epoch the client spends the credential in, by its
	// clock. The host passes only the gateway's current epoch or one of
	// its two neighbours (clock skew, a boundary crossed in flight) and
	// refuses any other before the plugin sees it.
	Epoch      uint64
	Gateway    NodeID // the node the credential is spent at
	Credential []byte // design-specific, at most MaxCredentialLen
	Packets    uint64 // how many packets the client asks to send
	// Client is the authenticated client whose allowance the granted
	// packets fill: a design may bind a credential or a quota to it.
	Client ClientKey
}
type RedeemResponse struct {
	Granted uint64 // packets granted; may be less than asked
	Receipt []byte // design-specific, e.g. a channel's new balance
}

// WorkKind says what a WorkRecord counts.
type WorkKind uint8

const (
	WorkForwarded WorkKind = 1 // packets a mix forwarded
	WorkDelivered WorkKind = 2 // packets a provider stored or handed to a client
	WorkProbed    WorkKind = 3 // auditor probes seen to cross the node
	// WorkProbeSent counts auditor probes routed through the node, whether
	// or not they came back (the secret shopper's denominator).
	WorkProbeSent WorkKind = 4
)

// WorkRecord counts packets of one kind handled by one node in one epoch.
type WorkRecord struct {
	Node    NodeID
	Kind    WorkKind
	Packets uint64
}

type RecordWorkRequest struct {
	Epoch   uint64
	BatchID []byte // optional; a repeated non-empty BatchID is counted once
	Records []WorkRecord
}
type RecordWorkResponse struct{}

type EarningsRequest struct{ Epoch uint64 }

// NodeEarnings is what one node earned in one epoch: the work counted and
// the amount, in the design's unit (micro-units of its currency; 0 in a
// design that pays nothing).
type NodeEarnings struct {
	Node      NodeID
	Forwarded uint64
	Delivered uint64
	Probed    uint64
	Amount    uint64
	// ProbesSent is how many auditor probes were routed through the node
	// (WorkProbeSent); Probed of them crossed it.
	ProbesSent uint64
}

type EarningsResponse struct {
	Unit  string
	Nodes []NodeEarnings
}
