package interfaces

import (
	"context"
	"time"
)

// MailboxID names a mailbox on a provider. It is the 32-byte recipient ID
// carried by a Sphinx Recipient command (forward mode) or named by the final
// command of a SURB (receiver-anonymous mode).
type MailboxID [32]byte

// ReplayTag is the per-packet tag a mix derives while unwrapping a Sphinx
// packet (SHA-512/256 of the header's group element).
type ReplayTag [32]byte

// Storage is the storage plugin kind: provider mailboxes, per-epoch replay
// tag sets, and a small namespaced key-value space for other plugins.
// Implementations must be safe for concurrent use. Every write is durable
// when the call returns successfully (the implementation's README says
// against which failures: process crash, power loss).
type Storage interface {
	Mailboxes
	ReplayTags
	KV
}

// Mailboxes holds payloads delivered to a provider until their recipient
// fetches and acknowledges them, or their lifetime runs out.
type Mailboxes interface {
	// AppendMailbox stores a batch of messages, each in its own mailbox with
	// its own lifetime, in one durable commit. It returns the ID assigned to
	// each message, in request order. IDs are unique within a mailbox and
	// grow with the order of appends. A batch is all or nothing.
	// Not idempotent: appending the same payload twice stores it twice.
	AppendMailbox(ctx context.Context, req *AppendMailboxRequest) (*AppendMailboxResponse, error)
	// ListMailbox lists the unexpired messages of one mailbox with an ID
	// greater than After, in ascending ID order, at most Limit of them
	// (0 means an implementation-chosen default). Payloads are not returned.
	ListMailbox(ctx context.Context, req *ListMailboxRequest) (*ListMailboxResponse, error)
	// FetchMailbox returns the unexpired messages of one mailbox with an ID
	// greater than After, in ascending ID order, payloads included, at most
	// Limit of them (0: implementation default) and at most MaxBytes of
	// payload (0: no byte limit; at least one message is always returned if
	// any exists). Fetching does not remove anything; see AckMailbox.
	FetchMailbox(ctx context.Context, req *FetchMailboxRequest) (*FetchMailboxResponse, error)
	// AckMailbox deletes the named messages from one mailbox. Idempotent:
	// acknowledging an unknown or already deleted ID is not an error.
	// Deleted reports how many of the IDs existed before the call.
	AckMailbox(ctx context.Context, req *AckMailboxRequest) (*AckMailboxResponse, error)
}

// ReplayTags remembers which Sphinx packets a mix has already processed,
// one set per epoch, so that a replayed packet is dropped even across a
// restart of the node.
type ReplayTags interface {
	// InsertReplayTags inserts a batch of tags into the epoch's set in one
	// durable commit and reports, per tag and in request order, whether it
	// was already present (Seen[i] = true means the packet is a replay).
	// A tag repeated inside one batch is reported seen from its second
	// occurrence on. Calls may run concurrently; a tag in two concurrent
	// batches is reported new by exactly one of them.
	InsertReplayTags(ctx context.Context, req *InsertReplayTagsRequest) (*InsertReplayTagsResponse, error)
	// DropReplayEpoch forgets every tag of one epoch, once that epoch's
	// Sphinx key is gone. Idempotent.
	DropReplayEpoch(ctx context.Context, req *DropReplayEpochRequest) (*DropReplayEpochResponse, error)
}

// KV is a small namespaced key-value space for other plugins: spent
// tokens, ratchet state, channel balances. Namespaces keep plugins apart;
// a namespace is a non-empty string of at most 64 bytes.
type KV interface {
	// KVPut writes a batch of entries into one namespace in one durable
	// commit. An entry with IfAbsent set is written only when its key does
	// not exist yet (insert-if-absent, the primitive behind double-spend
	// checks); Applied[i] reports whether entry i was written. A Lifetime of
	// zero means the entry never expires.
	KVPut(ctx context.Context, req *KVPutRequest) (*KVPutResponse, error)
	// KVGet reads keys from one namespace. A missing or expired key gives
	// Found[i] = false and a nil value, not an error.
	KVGet(ctx context.Context, req *KVGetRequest) (*KVGetResponse, error)
	// KVDelete removes keys from one namespace. Idempotent.
	KVDelete(ctx context.Context, req *KVDeleteRequest) (*KVDeleteResponse, error)
	// KVList lists the keys (not values) of one namespace that start with
	// Prefix and sort after After, in ascending byte order, at most Limit
	// (0: implementation default).
	KVList(ctx context.Context, req *KVListRequest) (*KVListResponse, error)
}

// MailboxMessage is one message to append.
type MailboxMessage struct {
	Mailbox  MailboxID
	Payload  []byte
	Lifetime time.Duration // must be > 0
}

type AppendMailboxRequest struct{ Messages []MailboxMessage }
type AppendMailboxResponse struct{ IDs []uint64 }

// KVSwapper is a KV that also offers compare-and-swap: the primitive
// behind counters, balances and state machines that several calls (or
// several processes) update at once. It is optional, so KVs written
// before it keep compiling; the host KV, interfaces/memkv and
// storage-badger implement it. A KVSwapper that forwards to another KV
// (over gRPC, under a slot's prefix) answers errors.ErrUnsupported when
// that KV does not swap; a request with no entries asks just that.
type KVSwapper interface {
	// KVSwap applies a batch of conditional writes to one namespace in one
	// durable commit. Entry i applies only if its key's current value
	// equals Expected (ExpectAbsent: only if the key does not exist); it
	// then writes Value with Lifetime (0: never expires), or removes the
	// key if Delete is set. An expired key is absent: it matches
	// ExpectAbsent and no Expected. Entries are checked in request order,
	// each against the state the earlier ones of the batch left, and all
	// of them in isolation from other calls. With All set the batch is
	// all or nothing: if one entry does not match, none is written and
	// Applied is all false. Applied[i] reports whether entry i was
	// written; when it was not, Current[i] and Found[i] give the value it
	// was compared with (the stored one unless an earlier entry of the
	// batch wrote the key), so a caller can retry without a KVGet. Both
	// are zero for an applied entry. A Delete with a Value, a negative
	// Lifetime or a bad key gives ErrInvalidArgument and writes nothing.
	KVSwap(ctx context.Context, req *KVSwapRequest) (*KVSwapResponse, error)
}

// KVSwapEntry is one conditional write of a KVSwapRequest.
type KVSwapEntry struct {
	Key []byte
	// Expected is the value the key must hold for the entry to apply
	// (nil and empty are the same value); ignored with ExpectAbsent.
	Expected     []byte
	ExpectAbsent bool
	// Value replaces the current value; with Delete set it must be empty
	// and the key is removed instead.
	Value    []byte
	Delete   bool
	Lifetime time.Duration // of the new value; 0: never expires
}

type KVSwapRequest struct {
	Namespace string
	Entries   []KVSwapEntry
	// All makes the batch all or nothing: one entry that does not match
	// and none is written.
	All bool
}
type KVSwapResponse struct {
	Applied []bool
	Current [][]byte
	Found   []bool
}

// MailboxEntry describes a stored message.
type MailboxEntry struct {
	ID      uint64
	Size    int
	Expires time.Time
	Payload []byte // nil in ListMailbox answers
}

type ListMailboxRequest struct {
	Mailbox MailboxID
	After   uint64
	Limit   int
}
type ListMailboxResponse struct{ Entries []MailboxEntry }

type FetchMailboxRequest struct {
	Mailbox  MailboxID
	After    uint64
	Limit    int
	MaxBytes int
}
type FetchMailboxResponse struct{ Entries []MailboxEntry }

type AckMailboxRequest struct {
	Mailbox MailboxID
	IDs     []uint64
}
type AckMailboxResponse struct{ Deleted int }

type InsertReplayTagsRequest struct {
	Epoch uint64
	Tags  []ReplayTag
}
type InsertReplayTagsResponse struct{ Seen []bool }

type DropReplayEpochRequest struct{ Epoch uint64 }
type DropReplayEpochResponse struct{}

// KVEntry is one key-value pair to write.
type KVEntry struct {
	Key      []byte
	Value    []byte
	IfAbsent bool
	Lifetime time.Duration
}

type KVPutRequest struct {
	Namespace string
	Entries   []KVEntry
}
type KVPutResponse struct{ Applied []bool }

type KVGetRequest struct {
	Namespace string
	Keys      [][]byte
}
type KVGetResponse struct {
	Values [][]byte
	Found  []bool
}

type KVDeleteRequest struct {
	Namespace string
	Keys      [][]byte
}
type KVDeleteResponse struct{}

type KVListRequest struct {
	Namespace string
	Prefix    []byte
	After     []byte
	Limit     int
}
type KVListResponse struct{ Keys [][]byte }
